// Wire codec benchmarks (issue 2). Targets (../shared/BENCHMARKS.md):
//   BM_DecodeOrder (decode + validate, no signature) >= 1,000,000/s on one core;
//   BM_VerifyOrder (full decode + verify) <= 1.15 x BM_RawVerify (bare Ed25519 verify of the
//   same bytes).
#include <benchmark/benchmark.h>
#include <sodium.h>

#include "market/codec.h"
#include "tests/market/test_messages.h"

namespace gpumart::market {
namespace {

constexpr int64_t kNow = 1'750'000'000'000;

const Identity& Tenant() {
  static const Identity identity = Identity::FromSeed(Seed{1});
  return identity;
}

void BM_EncodeOrder(benchmark::State& state) {
  const Order order = testing::SampleOrder();
  size_t bytes = 0;
  for (auto _ : state) {
    Bytes body = EncodeBody(order);
    bytes += body.size();
    benchmark::DoNotOptimize(body.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_EncodeOrder);

// Decode + validate a signed Order from its wire bytes: the envelope, then the body. No signature.
void BM_DecodeOrder(benchmark::State& state) {
  const Bytes wire = EncodeEnvelope(MakeSigned(Tenant(), testing::SampleOrder(), kNow, 60'000, 1).envelope);
  for (auto _ : state) {
    Result<Envelope> envelope = DecodeEnvelope(wire);
    Result<Order> order = DecodeOrder(envelope->body);
    if (!order.ok()) state.SkipWithError(order.status().ToString().c_str());
    benchmark::DoNotOptimize(order->services.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeOrder);

// The floor: libsodium's Ed25519 verify over the same signing input, nothing else.
void BM_RawVerify(benchmark::State& state) {
  const Envelope envelope = MakeSigned(Tenant(), testing::SampleOrder(), kNow, 60'000, 1).envelope;
  const Bytes input = SigningInput(envelope);
  for (auto _ : state) {
    const int rc = crypto_sign_verify_detached(envelope.signature.data(), input.data(), input.size(),
                                               envelope.signer.data());
    benchmark::DoNotOptimize(rc);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawVerify);

// Everything a node does to a live Order: decode envelope, freshness, decode + validate body,
// rebuild the signing input, verify, compute the id.
void BM_VerifyOrder(benchmark::State& state) {
  const Bytes wire = EncodeEnvelope(MakeSigned(Tenant(), testing::SampleOrder(), kNow, 60'000, 1).envelope);
  for (auto _ : state) {
    Result<Signed<Order>> message = OpenSigned<Order>(wire, kNow);
    if (!message.ok()) state.SkipWithError(message.status().ToString().c_str());
    benchmark::DoNotOptimize(message->id.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyOrder);

}  // namespace
}  // namespace gpumart::market
