// The live offer book: gossiped Offers into the matching engine's OfferBook, keyed by signer,
// newest kept, expired ones out, limits counted, reputation and auditors from the ledger.
#include "node/offer_book_actor.h"

#include <gtest/gtest.h>

#include "actors/test_harness.h"
#include "market/codec.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/market/test_messages.h"

namespace gpumart::node {
namespace {

using ledger::testing::kStartMs;
using ledger::testing::Parties;
using ledger::testing::WriteOne;

constexpr int64_t kOfferTtlMs = 60'000;

// The order the sample offer can take: the sample order without requirements the offer lacks.
market::Order TakeableOrder() {
  market::Order order = market::testing::SampleOrder();
  order.attributes = {{"region", "us-west"}};
  order.signed_by = {};
  return order;
}

market::Offer OfferAt(uint64_t h100_rate) {
  market::Offer offer = market::testing::SampleOffer();
  offer.pricing[0].gpu["h100.80Gi.sxm"] = h100_rate;
  return offer;
}

gossip::Deliver Delivered(const market::Signed<market::Offer>& offer) {
  return gossip::Deliver{offer.id, market::MessageType::kOffer, market::EncodeEnvelope(offer.envelope), 1};
}

class OfferBookActorTest : public ::testing::Test {
 protected:
  void Start(OfferBookOptions options = {}) {
    harness_ = std::make_unique<actors::ActorTestHarness>(
        [this, options] { return std::make_unique<OfferBookActor>(*store_, counters_, options); });
    ASSERT_TRUE(harness_->ok()) << harness_->init_error();
    ASSERT_EQ(harness_->clock().NowMs(), kStartMs);
  }

  market::Signed<market::Offer> Sign(const market::Identity& provider, const market::Offer& offer,
                                     int64_t created_ms = kStartMs, int64_t ttl_ms = kOfferTtlMs) {
    return market::MakeSigned(provider, offer, created_ms, ttl_ms, ++nonce_);
  }
  void Give(const market::Signed<market::Offer>& offer) {
    ASSERT_EQ(harness_->Deliver(DeliveredOffer{Delivered(offer)}), actors::Delivery::kHandled);
  }
  std::vector<market::Candidate> Find(const market::Order& order, size_t k = 10) {
    auto reply = harness_->Request<Result<std::vector<market::Candidate>>>(FindOffers{order, market::Policy::kPreference, k});
    EXPECT_TRUE(reply.ok());
    if (!reply.ok() || !reply.value().ok()) return {};
    return reply.value().value();
  }
  Result<market::OfferSearchResult> Search(const std::string& query, const std::string& order,
                                           size_t limit = market::kDefaultOfferSearchRows) {
    auto reply = harness_->Request<Result<market::OfferSearchResult>>(SearchOffers{query, order, limit});
    EXPECT_TRUE(reply.ok());
    if (!reply.ok()) return gpumart::Status::Internal("no reply");
    return reply.value();
  }
  OfferBookStatus Status() {
    auto reply = harness_->Request<OfferBookStatus>(GetOfferBookStatus{});
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply.value() : OfferBookStatus{};
  }

  ledger::testing::TempDir dir_;
  std::unique_ptr<ledger::LedgerStore> store_ = ledger::testing::OpenOrDie(dir_.Sub("ledger"));
  std::shared_ptr<OfferBookCounters> counters_ = std::make_shared<OfferBookCounters>();
  std::unique_ptr<actors::ActorTestHarness> harness_;
  Parties parties_;
  uint64_t nonce_ = 0;
};

TEST_F(OfferBookActorTest, AGossipedOfferIsInTheBookUnderItsSignersKey) {
  Start();
  Give(Sign(parties_.provider(), OfferAt(300'000)));
  const auto found = Find(TakeableOrder());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].provider, market::ToHex(parties_.provider().public_key()));  // not the body's name
  EXPECT_EQ(found[0].reputation_ppm, 500'000u);  // a newcomer; never the body's own claim
  EXPECT_EQ(Status().offers, 1u);
  EXPECT_EQ(Status().book.offers, 1u);
  EXPECT_EQ(counters_->held.load(), 1u);
  EXPECT_EQ(counters_->added.load(), 1u);
}

TEST_F(OfferBookActorTest, ANewerOfferOfTheSameProviderReplacesTheOlder) {
  Start();
  const auto older = Sign(parties_.provider(), OfferAt(300'000), kStartMs - 1'000);
  const auto newer = Sign(parties_.provider(), OfferAt(100'000), kStartMs);
  Give(older);
  const uint64_t old_price = Find(TakeableOrder()).at(0).price_per_hour;
  Give(newer);
  Give(older);  // arriving late changes nothing
  Give(newer);  // nor does the same again
  const auto found = Find(TakeableOrder());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].price_per_hour, old_price - 2 * 200'000);  // two H100s, 200'000 cheaper each
  EXPECT_EQ(counters_->replaced.load(), 1u);
  EXPECT_EQ(counters_->stale.load(), 2u);
  // Another provider's offer with the same name is another entry.
  const market::Identity other = market::Identity::Generate();
  Give(Sign(other, OfferAt(300'000)));
  EXPECT_EQ(Find(TakeableOrder()).size(), 2u);
  EXPECT_EQ(counters_->held.load(), 2u);
}

TEST_F(OfferBookActorTest, ExpiredOffersLeaveTheBook) {
  Start();
  Give(Sign(parties_.provider(), OfferAt(300'000), kStartMs, 5'000));
  const market::Identity later = market::Identity::Generate();
  Give(Sign(later, OfferAt(300'000), kStartMs, 20'000));
  Give(Sign(market::Identity::Generate(), OfferAt(300'000), kStartMs - 10'000, 5'000));  // expired already
  EXPECT_EQ(counters_->expired.load(), 1u);
  EXPECT_EQ(Find(TakeableOrder()).size(), 2u);
  harness_->AdvanceTime(6'000);
  const auto found = Find(TakeableOrder());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].provider, market::ToHex(later.public_key()));
  EXPECT_EQ(counters_->expired.load(), 2u);
  EXPECT_EQ(counters_->held.load(), 1u);
  harness_->AdvanceTime(15'000);
  EXPECT_TRUE(Find(TakeableOrder()).empty());
  EXPECT_EQ(Status().offers, 0u);
  EXPECT_EQ(Status().offer_bytes, 0u);
  EXPECT_EQ(Status().book.device_types, 0u);  // nothing outlives the offers that used it
}

TEST_F(OfferBookActorTest, TheBooksLimitsAreRespectedAndCounted) {
  const auto first = Sign(parties_.provider(), OfferAt(300'000));
  Start({.max_offers = 2, .max_bytes = 3 * Delivered(first).envelope.size() / 2 + 100});
  Give(first);
  Give(Sign(market::Identity::Generate(), OfferAt(300'000)));  // over the bytes
  EXPECT_EQ(counters_->over_limit.load(), 1u);
  Give(Sign(parties_.provider(), OfferAt(200'000), kStartMs + 1));  // a replacement fits
  EXPECT_EQ(counters_->replaced.load(), 1u);
  EXPECT_EQ(Status().offers, 1u);

  // The count: a third provider is refused, a known one still replaces its offer.
  counters_ = std::make_shared<OfferBookCounters>();
  Start({.max_offers = 2});
  const market::Identity second = market::Identity::Generate();
  Give(Sign(parties_.provider(), OfferAt(300'000)));
  Give(Sign(second, OfferAt(300'000)));
  Give(Sign(market::Identity::Generate(), OfferAt(300'000)));
  EXPECT_EQ(counters_->over_limit.load(), 1u);
  Give(Sign(second, OfferAt(100'000), kStartMs + 1));
  EXPECT_EQ(counters_->replaced.load(), 1u);
  EXPECT_EQ(Status().offers, 2u);
}

// OfferBook::Upsert refuses an offer over a work bound (more device types than
// market::kMaxOfferDeviceTypes): counted, and the provider's older offer goes too, since it no
// longer says what the provider has.
TEST_F(OfferBookActorTest, AnOfferTheMatchingEngineRefusesIsCountedAndReplacesNothing) {
  Start();
  Give(Sign(parties_.provider(), OfferAt(300'000), kStartMs - 1));
  market::Offer huge = OfferAt(300'000);
  huge.nodes.clear();
  for (size_t n = 0; huge.nodes.size() * 32 <= market::kMaxOfferDeviceTypes; ++n) {
    market::NodeCapacity node = market::testing::SampleOffer().nodes[0];
    node.name = "n" + std::to_string(n);
    node.gpus.clear();
    for (uint64_t g = 0; g < 32; ++g) {
      node.gpus.push_back({"nvidia", "h100", (n * 32 + g + 1) * market::kGi, market::GpuInterface::kSxm,
                           market::CudaVersion{12, 4}, 1});
    }
    huge.nodes.push_back(node);
  }
  ASSERT_FALSE(market::CheckOfferWork(huge).ok());
  Give(Sign(parties_.provider(), huge));
  EXPECT_EQ(counters_->malformed.load(), 0u);
  EXPECT_EQ(counters_->over_limit.load(), 1u);
  EXPECT_TRUE(Find(TakeableOrder()).empty());
  EXPECT_EQ(counters_->held.load(), 0u);
}

// Reputation and auditors are this node's: its ledger's lease outcomes for the signer's key, and
// the auditors whose latest attestation about that key is a pass (signedBy counts those).
TEST_F(OfferBookActorTest, ReputationAndAuditorsComeFromTheLedger) {
  const auto lease = parties_.FreshLease();
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordLease{lease}).ok());
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordClose{parties_.Close(lease.id, parties_.tenant(),
                                                                   market::CloseReason::kTenantClosed, kStartMs + 1)})
                  .ok());
  const market::Identity auditor = market::Identity::Generate();
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordAttestation{market::MakeSigned(
                                    auditor,
                                    market::Attestation{parties_.provider().public_key(), market::AuditVerdict::kPass,
                                                        kStartMs, "checked"},
                                    kStartMs, kOfferTtlMs, 1)})
                  .ok());
  Start();
  Give(Sign(parties_.provider(), OfferAt(300'000)));
  market::Order vouched = TakeableOrder();
  vouched.signed_by.all_of = {market::ToHex(auditor.public_key())};
  const auto found = Find(vouched);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].reputation_ppm, 666'666u);  // one completed lease
  market::Order other = TakeableOrder();
  other.signed_by.all_of = {market::ToHex(market::Identity::Generate().public_key())};
  EXPECT_TRUE(Find(other).empty());
}

TEST_F(OfferBookActorTest, BadInputIsCountedOrRefused) {
  Start();
  ASSERT_EQ(harness_->Deliver(DeliveredOffer{gossip::Deliver{{}, market::MessageType::kOffer, {0x01, 0x02}, 1}}),
            actors::Delivery::kHandled);
  Give(Sign(parties_.provider(), OfferAt(300'000)));
  const auto order = parties_.Order();  // an Order's bytes under the Offer type
  ASSERT_EQ(harness_->Deliver(DeliveredOffer{gossip::Deliver{order.id, market::MessageType::kOffer,
                                                              market::EncodeEnvelope(order.envelope), 1}}),
            actors::Delivery::kHandled);
  EXPECT_EQ(counters_->malformed.load(), 2u);
  market::Order invalid = TakeableOrder();
  invalid.services.clear();
  auto reply = harness_->Request<Result<std::vector<market::Candidate>>>(FindOffers{invalid});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value().status().code(), Status::Code::kInvalidArgument);
  // k is capped, not trusted.
  EXPECT_EQ(Find(TakeableOrder(), size_t{1} << 40).size(), 1u);
}

// `gpumart offers` over the live book: rows keyed by signer, this node's reputation and
// auditors (never the offer's own word), newest offer only, expired ones gone.
TEST_F(OfferBookActorTest, SearchShowsTheLiveBookWithThisNodesReputation) {
  const auto lease = parties_.FreshLease();
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordLease{lease}).ok());
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordClose{parties_.Close(lease.id, parties_.tenant(),
                                                                   market::CloseReason::kTenantClosed, kStartMs + 1)})
                  .ok());
  const market::Identity auditor = market::Identity::Generate();
  ASSERT_TRUE(WriteOne(*store_, ledger::RecordAttestation{market::MakeSigned(
                                    auditor,
                                    market::Attestation{parties_.provider().public_key(), market::AuditVerdict::kPass,
                                                        kStartMs, "checked"},
                                    kStartMs, kOfferTtlMs, 1)})
                  .ok());
  Start();
  const std::string known = market::ToHex(parties_.provider().public_key());
  const market::Identity newcomer = market::Identity::Generate();
  Give(Sign(parties_.provider(), OfferAt(300'000), kStartMs, 5'000));
  Give(Sign(newcomer, OfferAt(250'000), kStartMs, 20'000));

  auto all = Search("gpu_name=H100_SXM num_gpus>=8", "dph");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->matched, 2u);
  ASSERT_EQ(all->rows.size(), 2u);
  EXPECT_EQ(all->rows[0].provider, market::ToHex(newcomer.public_key()));
  EXPECT_EQ(all->rows[0].dph, 8u * 250'000u);
  EXPECT_EQ(all->rows[0].reliability_ppm, 500'000u);  // not the body's 970'000
  EXPECT_FALSE(all->rows[0].verified);                 // the body's auditors are not on the wire
  EXPECT_EQ(all->rows[1].provider, known);
  EXPECT_EQ(all->rows[1].name, "Provider A");
  EXPECT_EQ(all->rows[1].reliability_ppm, 666'666u);  // one completed lease in this ledger
  EXPECT_TRUE(all->rows[1].verified);

  auto reliable = Search("reliability>0.6 verified=true", "");
  ASSERT_TRUE(reliable.ok());
  ASSERT_EQ(reliable->rows.size(), 1u);
  EXPECT_EQ(reliable->rows[0].provider, known);
  auto first = Search("", "reliability-", 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->matched, 2u);
  ASSERT_EQ(first->rows.size(), 1u);
  EXPECT_EQ(first->rows[0].provider, known);

  Give(Sign(parties_.provider(), OfferAt(100'000), kStartMs + 1, 5'000));  // replaces its offer
  auto cheaper = Search("provider=" + known, "");
  ASSERT_TRUE(cheaper.ok());
  ASSERT_EQ(cheaper->rows.size(), 1u);
  EXPECT_EQ(cheaper->rows[0].dph_per_gpu, 100'000u);
  harness_->AdvanceTime(6'000);
  auto after_expiry = Search("", "");
  ASSERT_TRUE(after_expiry.ok());
  ASSERT_EQ(after_expiry->rows.size(), 1u);
  EXPECT_EQ(after_expiry->rows[0].provider, market::ToHex(newcomer.public_key()));
}

TEST_F(OfferBookActorTest, ASearchThatDoesNotParseIsAClearError) {
  Start();
  auto query = Search("gpu_name=h100 num_gpu>=2", "");
  ASSERT_FALSE(query.ok());
  EXPECT_EQ(query.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(query.status().message().find("column 15: unknown field 'num_gpu'"), std::string::npos)
      << query.status().message();
  auto order = Search("", "price");
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("sort order, column 1: unknown field 'price'"), std::string::npos);
  auto too_long = Search(std::string(market::kMaxOfferQueryBytes + 1, ' '), "");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), Status::Code::kLimitExceeded);
}

}  // namespace
}  // namespace gpumart::node
