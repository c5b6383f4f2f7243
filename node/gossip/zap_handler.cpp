#include "node/gossip/zap_handler.h"

#include <array>
#include <cstring>
#include <vector>

#include "market/types.h"

namespace gpumart::gossip {

namespace {
// A ZAP request has 7 frames for CURVE (version, request id, domain, address, routing id,
// mechanism, client key); anything longer is not one.
constexpr size_t kMaxZapRequestFrames = 8;
}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, Policy policy)
    : socket_(context, zmq::socket_type::rep), policy_(std::move(policy)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind(kZapEndpoint);  // throws when another handler has it: no silent accept-all
}

void ZapHandler::HandleRequests() {
  while (true) {
    std::vector<zmq::message_t> frames;
    zmq::message_t part;
    if (!socket_.recv(part, zmq::recv_flags::dontwait)) return;
    bool more = part.more();
    frames.push_back(std::move(part));
    while (more) {
      zmq::message_t next;
      if (!socket_.recv(next, zmq::recv_flags::dontwait)) break;
      more = next.more();
      if (frames.size() < kMaxZapRequestFrames) frames.push_back(std::move(next));
    }
    std::string status_code = "400";
    std::string status_text = "malformed request";
    std::string user_id;
    if (frames.size() == 7 && frames[0].to_string_view() == "1.0" && frames[5].to_string_view() == "CURVE" &&
        frames[6].size() == kCurveKeyBytes) {
      CurveKey key{};
      std::memcpy(key.data(), frames[6].data(), key.size());
      if (policy_ && policy_(key, frames[3].to_string())) {
        status_code = "200";
        status_text = "OK";
        user_id = market::ToHex(key);
        ++admitted_;
      } else {
        status_code = "400";
        status_text = "key refused";
        ++refused_;
      }
    } else {
      ++malformed_;
    }
    const std::string request_id = frames.size() > 1 ? frames[1].to_string() : std::string();
    // The reply goes to libzmq itself over inproc: it cannot block for long, but never wait.
    const std::array<std::string, 6> reply{"1.0", request_id, status_code, status_text, user_id, ""};
    for (size_t i = 0; i < reply.size(); ++i) {
      const auto flags = (i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                         zmq::send_flags::dontwait;
      if (!socket_.send(zmq::buffer(reply[i]), flags)) break;
    }
  }
}

}  // namespace gpumart::gossip
