#include "node/client/client.h"

#include <zmq.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <zmq.hpp>

#include "market/yaml_tree.h"
#include "node/gossip/curve_keys.h"

namespace gpumart::client {
namespace {

// The client config is small; anything bigger is not one.
constexpr size_t kMaxClientConfigBytes = 64 << 10;
constexpr market::YamlLimits kClientConfigYamlLimits{.max_nodes = 4096, .max_depth = 8};

int64_t MillisLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max<int64_t>(0, left.count());
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::string text;
  text.resize(kMaxClientConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxClientConfigBytes) return Status::LimitExceeded(path + " is larger than a client config");
  return text;
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(std::string address) : address_(std::move(address)), socket_(context_, zmq::socket_type::dealer) {}

  Status Open() {
    std::string endpoint = address_;
    if (address_.find('/', std::string_view("tcp://").size()) != std::string::npos) {
      // "endpoint/identity": the node's CURVE key is its identity's; ours is a fresh one.
      Result<gossip::PeerEndpoint> peer = gossip::ParsePeerAddress(address_);
      if (!peer.ok()) return peer.status().WithContext("node address " + address_);
      std::optional<gossip::CurveKey> server = gossip::CurveKeyOf(peer->identity);
      if (!server) return Status::InvalidArgument("node address " + address_ + ": the identity is not a public key");
      char public_z85[41] = {};
      char secret_z85[41] = {};
      if (zmq_curve_keypair(public_z85, secret_z85) != 0) return Status::Internal("zmq_curve_keypair failed");
      socket_.set(zmq::sockopt::curve_serverkey, gossip::Z85(*server));
      socket_.set(zmq::sockopt::curve_publickey, std::string(public_z85));
      socket_.set(zmq::sockopt::curve_secretkey, std::string(secret_z85));
      endpoint = peer->endpoint;
    } else if (address_.rfind("tcp://", 0) != 0 && address_.rfind("ipc://", 0) != 0) {
      return Status::InvalidArgument("node address " + address_ + " is not tcp://HOST:PORT[/IDENTITY]");
    }
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits::kMaxTransportBytes));
    try {
      socket_.connect(endpoint);
    } catch (const zmq::error_t& error) {
      return Status::InvalidArgument("node address " + address_ + ": " + error.what());
    }
    return Status::Ok();
  }

  Result<Fields> Call(const std::string& kind, Fields args, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const uint64_t id = next_id_++;
    const Bytes frame = EncodeRequest({id, kind, std::move(args)});
    if (frame.size() > limits::kMaxFrameBytes) {
      return Status::LimitExceeded("request of " + std::to_string(frame.size()) + " bytes exceeds the client port's limit");
    }
    zmq::pollitem_t out_item{socket_.handle(), 0, ZMQ_POLLOUT, 0};
    if (zmq::poll(&out_item, 1, std::chrono::milliseconds(MillisLeft(deadline))) == 0 ||
        !socket_.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait)) {
      return Timeout(kind, timeout);
    }
    while (true) {
      Result<Response> response = Receive(deadline);
      if (!response.ok()) {
        if (response.status().code() == Status::Code::kTimeout) return Timeout(kind, timeout);
        return response.status();
      }
      if (response->id != id) continue;  // the late answer of a call that timed out
      if (response->code != Status::Code::kOk) return response->status();
      return std::move(response->result);
    }
  }

  Result<Event> WaitEvent(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (events_.empty()) {
      Result<Response> response = Receive(deadline);
      if (!response.ok()) return response.status();
    }
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }

  const std::string& address() const { return address_; }
  uint64_t events_dropped() const { return events_dropped_; }

 private:
  Status Timeout(const std::string& kind, std::chrono::milliseconds timeout) const {
    return Status::Timeout("no answer from the node at " + address_ + " to " + kind + " within " +
                           std::to_string(timeout.count()) + " ms (is gpumartd running there?)");
  }

  // One frame: a response is returned; an event is queued and returned too (id 0). Frames that
  // do not decode are skipped (a node that sends them is broken, not a reason to stop).
  Result<Response> Receive(std::chrono::steady_clock::time_point deadline) {
    while (true) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(MillisLeft(deadline))) == 0) {
        return Status::Timeout("no frame");
      }
      zmq::message_t message;
      if (!socket_.recv(message, zmq::recv_flags::dontwait)) continue;
      Result<Response> response =
          DecodeResponse({static_cast<const uint8_t*>(message.data()), message.size()});
      if (!response.ok()) {
        ++malformed_;
        continue;
      }
      if (response->is_event()) QueueEvent(*response);
      return response;
    }
  }

  void QueueEvent(const Response& response) {
    Event event;
    event.type = response.message;
    auto order = Optional<Bytes>(response.result, "order");
    auto id = Optional<Bytes>(response.result, "id");
    auto envelope = Optional<Bytes>(response.result, "envelope");
    if (!order.ok() || !id.ok() || !envelope.ok() || *order == nullptr || *id == nullptr || *envelope == nullptr ||
        (*order)->size() != market::kIdBytes || (*id)->size() != market::kIdBytes) {
      ++malformed_;
      return;
    }
    std::copy((*order)->begin(), (*order)->end(), event.order_id.begin());
    std::copy((*id)->begin(), (*id)->end(), event.id.begin());
    event.envelope = **envelope;
    if (events_.size() >= kMaxQueuedEvents) {
      events_.pop_front();
      ++events_dropped_;
    }
    events_.push_back(std::move(event));
  }

  const std::string address_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  uint64_t next_id_ = 1;
  std::deque<Event> events_;
  uint64_t events_dropped_ = 0;
  uint64_t malformed_ = 0;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(const std::string& address, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>(address);
  GPUMART_RETURN_IF_ERROR(impl->Open());
  std::unique_ptr<Client> client(new Client(std::move(impl)));
  Result<Fields> pong = client->Call("ping", {}, timeout);
  if (!pong.ok()) return pong.status();
  return client;
}

Result<Fields> Client::Call(const std::string& kind, Fields args, std::chrono::milliseconds timeout) {
  return impl_->Call(kind, std::move(args), timeout);
}

Result<market::MessageId> Client::Publish(const Bytes& envelope, std::chrono::milliseconds timeout) {
  Result<Fields> result = Call("publish", {{"envelope", envelope}}, timeout);
  if (!result.ok()) return result.status();
  Result<const Bytes*> id = Require<Bytes>(*result, "id");
  if (!id.ok()) return id.status();
  if ((*id)->size() != market::kIdBytes) return Status::Corruption("publish: the node's id is not 32 bytes");
  market::MessageId out{};
  std::copy((*id)->begin(), (*id)->end(), out.begin());
  return out;
}

Result<Event> Client::WaitEvent(std::chrono::milliseconds timeout) { return impl_->WaitEvent(timeout); }
uint64_t Client::events_dropped() const { return impl_->events_dropped(); }
const std::string& Client::address() const { return impl_->address(); }

std::string ClientConfigPath() {
  if (const char* path = std::getenv("GPUMART_CLIENT_CONFIG"); path != nullptr && *path != '\0') return path;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.config/gpumart/client.yaml";
}

Result<std::string> ResolveNodeAddress(const std::string& explicit_address, const std::string& data_dir) {
  if (!explicit_address.empty()) return explicit_address;
  const std::string config_path = ClientConfigPath();
  if (Result<std::string> text = ReadSmallFile(config_path); text.ok()) {
    Result<market::YamlTree> tree = market::YamlTree::Parse(*text, kClientConfigYamlLimits);
    if (!tree.ok()) return tree.status().WithContext(config_path);
    const market::YamlNode node = tree->Root().Find("node");
    if (node.IsScalar() && !node.Scalar().empty()) return std::string(node.Scalar());
  }
  const std::string file = data_dir + "/" + kClientAddressFile;
  Result<std::string> written = ReadSmallFile(file);
  if (written.ok()) {
    std::string address = *written;
    while (!address.empty() && (address.back() == '\n' || address.back() == '\r' || address.back() == ' ')) {
      address.pop_back();
    }
    if (!address.empty()) return address;
  }
  return Status::NotFound("no node to talk to: no --node, no node: in " + config_path + ", and no running daemon's " +
                          file + " (start gpumartd, or pass --node ADDR)");
}

}  // namespace gpumart::client
