#include "node/gossip/frames.h"

#include <sodium.h>

#include <cstring>
#include <type_traits>

#include "market/msgpack_reader.h"
#include "market/msgpack_writer.h"

namespace gpumart::gossip {

std::string_view ToString(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "hello";
    case FrameType::kMessage: return "message";
    case FrameType::kIhave: return "ihave";
    case FrameType::kGraft: return "graft";
    case FrameType::kPrune: return "prune";
    case FrameType::kPing: return "ping";
    case FrameType::kPong: return "pong";
    case FrameType::kPeers: return "peers";
    case FrameType::kGetPeers: return "get_peers";
    case FrameType::kReconcile: return "reconcile";
    case FrameType::kReconcileItems: return "reconcile_items";
  }
  return "unknown";
}

namespace {

// The canonical writer, so equal frames give equal bytes (the HELLO signature relies on it).
class Encoder : public market::MsgpackWriter {
 public:
  explicit Encoder(Bytes& out) : MsgpackWriter(out), out_(out) {}
  void Type(FrameType type) { Uint(static_cast<uint8_t>(type)); }
  // Each id as Bin writes it (bin 8: 0xc4, 32, the bytes), in one block: through the writer an
  // id cost a vector insert each, the most frequent call of a gossiping node (IHAVE frames).
  void Ids(const std::vector<MessageId>& ids) {
    static_assert(sizeof(MessageId) == 32);
    Array(ids.size());
    const size_t at = out_.size();
    out_.resize(at + ids.size() * (2 + sizeof(MessageId)));
    uint8_t* write = out_.data() + at;
    for (const auto& id : ids) {
      *write++ = 0xc4;
      *write++ = sizeof(MessageId);
      std::memcpy(write, id.data(), id.size());
      write += id.size();
    }
  }

 private:
  Bytes& out_;
};

void EncodeHelloFields(Encoder& e, const Hello& hello) {
  e.Uint(hello.version);
  e.Bin(hello.identity);
  e.Str(hello.address);
  e.Uint(static_cast<uint8_t>(hello.role));
  e.Int(hello.created_ms);
}

using market::MsgpackReader;

Status ReadIds(MsgpackReader& r, const char* field, size_t max, std::vector<MessageId>& ids) {
  size_t count = 0;
  GPUMART_RETURN_IF_ERROR(r.List(field, max, count));
  ids.resize(count);
  for (auto& id : ids) GPUMART_RETURN_IF_ERROR(r.FixedBin(field, id.data(), id.size()));
  return Status::Ok();
}

Status ReadRole(MsgpackReader& r, const char* field, Role& role) {
  uint64_t value = 0;
  GPUMART_RETURN_IF_ERROR(r.Uint(field, kMaxRole, value));
  role = static_cast<Role>(value);
  return Status::Ok();
}

Status ExpectFields(const char* frame, size_t got, size_t want) {
  if (got == want) return Status::Ok();
  return Status::Corruption(std::string(frame) + ": expected " + std::to_string(want) + " elements, got " +
                            std::to_string(got));
}

// The array header and the type every frame starts with.
Status ReadFrameHead(MsgpackReader& r, size_t bytes, size_t& elements, uint64_t& type) {
  if (bytes > limits::kMaxFrameBytes) {
    return Status::LimitExceeded("frame: " + std::to_string(bytes) + " bytes exceed the limit of " +
                                 std::to_string(limits::kMaxFrameBytes));
  }
  if (bytes == 0) return Status::Corruption("frame: empty");
  GPUMART_RETURN_IF_ERROR(r.List("frame", 7, elements));
  if (elements == 0) return Status::Corruption("frame: empty array");
  return r.Uint("frame.type", 0xff, type);
}

Status ExpectEnd(const MsgpackReader& r) {
  if (r.AtEnd()) return Status::Ok();
  return Status::Corruption("frame: " + std::to_string(r.Remaining()) + " trailing bytes");
}

Status ReadMessageFields(MsgpackReader& r, size_t elements, MessageFrameView& message) {
  GPUMART_RETURN_IF_ERROR(ExpectFields("message", elements, 3));
  GPUMART_RETURN_IF_ERROR(r.UintAs("message.hops", limits::kMaxHops, message.hops));
  const uint8_t* data = nullptr;
  size_t size = 0;
  GPUMART_RETURN_IF_ERROR(r.Bin("message.envelope", market::limits::kMaxMessageBytes, data, size));
  message.envelope = std::span(data, size);
  return Status::Ok();
}

Status ReadIhaveFields(MsgpackReader& r, size_t elements, IhaveFrame& ihave) {
  GPUMART_RETURN_IF_ERROR(ExpectFields("ihave", elements, 2));
  return ReadIds(r, "ihave.ids", limits::kMaxIhaveIds, ihave.ids);
}

}  // namespace

Bytes HelloSigningInput(const Hello& hello) {
  Bytes out(kHelloDomain.begin(), kHelloDomain.end());
  Encoder e(out);
  e.Array(5);
  EncodeHelloFields(e, hello);
  return out;
}

Hello SignHello(const market::Identity& identity, std::string address, Role role, int64_t created_ms) {
  Hello hello;
  hello.identity = identity.public_key();
  hello.address = std::move(address);
  hello.role = role;
  hello.created_ms = created_ms;
  const Bytes input = HelloSigningInput(hello);
  hello.signature = identity.Sign(input.data(), input.size());
  return hello;
}

Status VerifyHello(const Hello& hello, int64_t now_ms) {
  if (hello.version != kGossipVersion) {
    return Status::InvalidArgument("hello: unsupported gossip version " + std::to_string(hello.version) +
                                   " (this node speaks " + std::to_string(kGossipVersion) + ")");
  }
  const int64_t skew = hello.created_ms > now_ms ? hello.created_ms - now_ms : now_ms - hello.created_ms;
  if (hello.created_ms > now_ms + limits::kMaxHelloSkewMs) {
    return Status::FromFuture("hello: created " + std::to_string(skew) + " ms in the future");
  }
  if (hello.created_ms < now_ms - limits::kMaxHelloSkewMs) {
    return Status::Expired("hello: created " + std::to_string(skew) + " ms ago");
  }
  const Bytes input = HelloSigningInput(hello);
  if (!market::VerifyDetached(hello.identity, hello.signature, input.data(), input.size())) {
    return Status::BadSignature("hello: signature does not verify");
  }
  return Status::Ok();
}

Bytes EncodeMessageFrame(uint32_t hops, std::span<const uint8_t> envelope) {
  Bytes out;
  out.reserve(envelope.size() + 16);
  Encoder e(out);
  e.Array(3);
  e.Type(FrameType::kMessage);
  e.Uint(hops);
  e.Bin(envelope.data(), envelope.size());
  return out;
}

Bytes EncodeFrame(const Frame& frame) {
  Bytes out;
  Encoder e(out);
  std::visit(
      [&](const auto& f) {
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, Hello>) {
          e.Array(7);
          e.Type(FrameType::kHello);
          EncodeHelloFields(e, f);
          e.Bin(f.signature);
        } else if constexpr (std::is_same_v<F, MessageFrame>) {
          out = EncodeMessageFrame(f.hops, f.envelope);
        } else if constexpr (std::is_same_v<F, IhaveFrame>) {
          e.Array(2);
          e.Type(FrameType::kIhave);
          e.Ids(f.ids);
        } else if constexpr (std::is_same_v<F, GraftFrame>) {
          e.Array(2);
          e.Type(FrameType::kGraft);
          e.Ids(f.ids);
        } else if constexpr (std::is_same_v<F, PruneFrame>) {
          e.Array(1);
          e.Type(FrameType::kPrune);
        } else if constexpr (std::is_same_v<F, PingFrame>) {
          e.Array(2);
          e.Type(FrameType::kPing);
          e.Uint(f.nonce);
        } else if constexpr (std::is_same_v<F, PongFrame>) {
          e.Array(2);
          e.Type(FrameType::kPong);
          e.Uint(f.nonce);
        } else if constexpr (std::is_same_v<F, PeersFrame>) {
          e.Array(2);
          e.Type(FrameType::kPeers);
          e.Array(f.peers.size());
          for (const auto& peer : f.peers) {
            e.Array(3);
            e.Bin(peer.identity);
            e.Str(peer.address);
            e.Uint(static_cast<uint8_t>(peer.role));
          }
        } else if constexpr (std::is_same_v<F, GetPeersFrame>) {
          e.Array(1);
          e.Type(FrameType::kGetPeers);
        } else if constexpr (std::is_same_v<F, ReconcileFrame>) {
          const Bytes ranges = reconcile::EncodeRanges(f.ranges);
          e.Array(3);
          e.Type(FrameType::kReconcile);
          e.Uint(f.round);
          e.Bin(ranges.data(), ranges.size());
        } else if constexpr (std::is_same_v<F, ReconcileItemsFrame>) {
          e.Array(4);
          e.Type(FrameType::kReconcileItems);
          e.Ids(f.want);
          e.Array(f.items.size());
          for (const Bytes& item : f.items) e.Bin(item.data(), item.size());
          e.Bool(f.done);
        }
      },
      frame);
  return out;
}

// Layout (docs/GOSSIP.md): a msgpack array [type:uint, ...]; the element count is fixed per type.
//   HELLO      [1, version:uint, identity:bin32, address:str, role:uint, created_ms:int, signature:bin64]
//   MESSAGE    [2, hops:uint, envelope:bin]
//   IHAVE      [3, [id:bin32, ...]]
//   GRAFT      [4, [id:bin32, ...]]
//   PRUNE      [5]
//   PING       [6, nonce:uint]
//   PONG       [7, nonce:uint]
//   PEERS      [8, [[identity:bin32, address:str, role:uint], ...]]
//   GET_PEERS  [9]
//   RECONCILE  [16, round:uint, ranges:bin]            (ranges: reconcile::DecodeRanges)
//   RECONCILE_ITEMS [17, [id:bin32, ...], [envelope:bin, ...], done:bool]
Result<Frame> DecodeFrame(std::span<const uint8_t> bytes) {
  MsgpackReader r(bytes.data(), bytes.size());
  size_t elements = 0;
  uint64_t type = 0;
  GPUMART_RETURN_IF_ERROR(ReadFrameHead(r, bytes.size(), elements, type));
  Frame frame;
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("hello", elements, 7));
      Hello hello;
      GPUMART_RETURN_IF_ERROR(r.UintAs("hello.version", 0xff, hello.version));
      GPUMART_RETURN_IF_ERROR(r.FixedBin("hello.identity", hello.identity.data(), hello.identity.size()));
      GPUMART_RETURN_IF_ERROR(r.Str("hello.address", limits::kMaxAddressBytes, hello.address));
      GPUMART_RETURN_IF_ERROR(ReadRole(r, "hello.role", hello.role));
      GPUMART_RETURN_IF_ERROR(r.Int("hello.created_ms", hello.created_ms));
      GPUMART_RETURN_IF_ERROR(r.FixedBin("hello.signature", hello.signature.data(), hello.signature.size()));
      frame = std::move(hello);
      break;
    }
    case FrameType::kMessage: {
      MessageFrameView view;
      GPUMART_RETURN_IF_ERROR(ReadMessageFields(r, elements, view));
      frame = MessageFrame{view.hops, Bytes(view.envelope.begin(), view.envelope.end())};
      break;
    }
    case FrameType::kIhave: {
      IhaveFrame ihave;
      GPUMART_RETURN_IF_ERROR(ReadIhaveFields(r, elements, ihave));
      frame = std::move(ihave);
      break;
    }
    case FrameType::kGraft: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("graft", elements, 2));
      GraftFrame graft;
      GPUMART_RETURN_IF_ERROR(ReadIds(r, "graft.ids", limits::kMaxGraftIds, graft.ids));
      frame = std::move(graft);
      break;
    }
    case FrameType::kPrune:
      GPUMART_RETURN_IF_ERROR(ExpectFields("prune", elements, 1));
      frame = PruneFrame{};
      break;
    case FrameType::kPing: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("ping", elements, 2));
      PingFrame ping;
      GPUMART_RETURN_IF_ERROR(r.Uint("ping.nonce", UINT64_MAX, ping.nonce));
      frame = ping;
      break;
    }
    case FrameType::kPong: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("pong", elements, 2));
      PongFrame pong;
      GPUMART_RETURN_IF_ERROR(r.Uint("pong.nonce", UINT64_MAX, pong.nonce));
      frame = pong;
      break;
    }
    case FrameType::kPeers: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("peers", elements, 2));
      PeersFrame peers;
      size_t count = 0;
      GPUMART_RETURN_IF_ERROR(r.List("peers.list", limits::kMaxPeersPerFrame, count));
      peers.peers.resize(count);
      for (auto& peer : peers.peers) {
        GPUMART_RETURN_IF_ERROR(r.Struct("peers.entry", 3));
        GPUMART_RETURN_IF_ERROR(r.FixedBin("peers.identity", peer.identity.data(), peer.identity.size()));
        GPUMART_RETURN_IF_ERROR(r.Str("peers.address", limits::kMaxAddressBytes, peer.address));
        GPUMART_RETURN_IF_ERROR(ReadRole(r, "peers.role", peer.role));
      }
      frame = std::move(peers);
      break;
    }
    case FrameType::kGetPeers:
      GPUMART_RETURN_IF_ERROR(ExpectFields("get_peers", elements, 1));
      frame = GetPeersFrame{};
      break;
    case FrameType::kReconcile: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("reconcile", elements, 3));
      ReconcileFrame reconcile;
      GPUMART_RETURN_IF_ERROR(r.UintAs("reconcile.round", limits::kMaxReconcileRounds - 1, reconcile.round));
      const uint8_t* data = nullptr;
      size_t size = 0;
      GPUMART_RETURN_IF_ERROR(r.Bin("reconcile.ranges", limits::kMaxFrameBytes, data, size));
      Result<std::vector<reconcile::Range>> ranges = reconcile::DecodeRanges(std::span(data, size));
      if (!ranges.ok()) return ranges.status();
      reconcile.ranges = std::move(*ranges);
      frame = std::move(reconcile);
      break;
    }
    case FrameType::kReconcileItems: {
      GPUMART_RETURN_IF_ERROR(ExpectFields("reconcile_items", elements, 4));
      ReconcileItemsFrame items;
      GPUMART_RETURN_IF_ERROR(ReadIds(r, "reconcile_items.want", limits::kMaxReconcileWantIds, items.want));
      size_t count = 0;
      GPUMART_RETURN_IF_ERROR(r.List("reconcile_items.items", limits::kMaxReconcileItems, count));
      items.items.resize(count);
      for (Bytes& item : items.items) {
        const uint8_t* data = nullptr;
        size_t size = 0;
        GPUMART_RETURN_IF_ERROR(r.Bin("reconcile_items.item", market::limits::kMaxMessageBytes, data, size));
        item.assign(data, data + size);
      }
      GPUMART_RETURN_IF_ERROR(r.Bool("reconcile_items.done", items.done));
      frame = std::move(items);
      break;
    }
    default:
      return Status::InvalidArgument("frame: unsupported frame type " + std::to_string(type));
  }
  GPUMART_RETURN_IF_ERROR(ExpectEnd(r));
  return frame;
}

Result<MessageFrameView> DecodeMessageFrameView(std::span<const uint8_t> bytes) {
  MsgpackReader r(bytes.data(), bytes.size());
  size_t elements = 0;
  uint64_t type = 0;
  GPUMART_RETURN_IF_ERROR(ReadFrameHead(r, bytes.size(), elements, type));
  if (type != static_cast<uint8_t>(FrameType::kMessage)) return Status::Corruption("frame: not a MESSAGE");
  MessageFrameView view;
  GPUMART_RETURN_IF_ERROR(ReadMessageFields(r, elements, view));
  GPUMART_RETURN_IF_ERROR(ExpectEnd(r));
  return view;
}

Status DecodeIhaveFrame(std::span<const uint8_t> bytes, IhaveFrame& ihave) {
  MsgpackReader r(bytes.data(), bytes.size());
  size_t elements = 0;
  uint64_t type = 0;
  GPUMART_RETURN_IF_ERROR(ReadFrameHead(r, bytes.size(), elements, type));
  if (type != static_cast<uint8_t>(FrameType::kIhave)) return Status::Corruption("frame: not an IHAVE");
  GPUMART_RETURN_IF_ERROR(ReadIhaveFields(r, elements, ihave));
  return ExpectEnd(r);
}

std::optional<MessageId> WireMessageId(std::span<const uint8_t> envelope) {
  // msgpack: fixarray of 8 first; a 64-byte signature is bin8 (0xc4, 64) and comes last.
  constexpr uint8_t kArray8 = 0x98;
  constexpr uint8_t kArray7 = 0x97;
  constexpr size_t kSignatureField = 2 + market::kSignatureBytes;
  if (envelope.size() < 1 + kSignatureField || envelope[0] != kArray8) return std::nullopt;
  const size_t signature_at = envelope.size() - kSignatureField;
  if (envelope[signature_at] != 0xc4 || envelope[signature_at + 1] != market::kSignatureBytes) return std::nullopt;
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, crypto_generichash_BYTES);
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(market::kSigningDomain.data()),
                            market::kSigningDomain.size());
  crypto_generichash_update(&state, &kArray7, 1);
  crypto_generichash_update(&state, envelope.data() + 1, signature_at - 1);
  MessageId id{};
  crypto_generichash_final(&state, id.data(), id.size());
  return id;
}

}  // namespace gpumart::gossip
