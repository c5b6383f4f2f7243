// The console in a real browser: headless Chromium (the Debian package `chromium`, installed by
// scripts/setup) loads the relay's console from a market with offers and a lease
// (tests/console/console_market.h). The test drives it over the DevTools protocol on a pipe
// (--remote-debugging-pipe: NUL-terminated JSON, commands on the browser's fd 3, answers and
// events on its fd 4), so it needs no other tool: it types a query and clicks as a person would,
// reads the DOM, records every network request the page makes, and keeps a screenshot of each
// page under the build folder (console-screenshots/). Every wait is bounded.
//
// Not run under the sanitizers (scripts/test): it tests the page, and the browser is not ours.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/console/console_market.h"

namespace gpumart::console_test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kChromium = "/usr/bin/chromium";
// The longest any one step waits (a page to render, an answer to come).
constexpr milliseconds kStepTimeout{8'000};

std::string Base64Decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) continue;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

// Headless Chromium and its DevTools pipe. Killed (its whole process group) when destroyed.
class Browser {
 public:
  Status Start(const std::string& profile_dir, const std::string& log_path) {
    int to_browser[2], from_browser[2];
    if (pipe2(to_browser, O_CLOEXEC) != 0 || pipe2(from_browser, O_CLOEXEC) != 0) return Status::IoError("pipe");
    std::vector<std::string> argv{kChromium, "--headless=new", "--no-sandbox", "--remote-debugging-pipe",
                                  "--user-data-dir=" + profile_dir, "--disable-gpu", "--no-first-run",
                                  "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                                  "--disable-background-networking", "--disable-component-update",
                                  "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
                                  "--hide-scrollbars", "--window-size=1280,900", "about:blank"};
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(null, 0);
      dup2(log, 1);
      dup2(log, 2);
      // dup2 clears close-on-exec on the new descriptor.
      dup2(to_browser[0], 3);
      dup2(from_browser[1], 4);
      execv(kChromium, args.data());
      _exit(127);
    }
    close(log);
    close(null);
    close(to_browser[0]);
    close(from_browser[1]);
    to_ = to_browser[1];
    from_ = from_browser[0];
    if (pid_ < 0) return Status::IoError("fork");
    return Status::Ok();
  }

  ~Browser() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Sends a command and waits (bounded) for its answer's "result"; events meanwhile are kept.
  Result<Json> Call(const std::string& method, Json params = Json::object(), const std::string& session = "") {
    const int id = next_id_++;
    Json message{{"id", id}, {"method", method}, {"params", std::move(params)}};
    if (!session.empty()) message["sessionId"] = session;
    std::string text = message.dump();
    text.push_back('\0');
    for (size_t sent = 0; sent < text.size();) {
      const ssize_t n = write(to_, text.data() + sent, text.size() - sent);
      if (n <= 0) return Status::IoError("the browser's pipe closed (" + method + ")");
      sent += static_cast<size_t>(n);
    }
    const auto deadline = Clock::now() + kStepTimeout;
    while (true) {
      Result<Json> next = Next(deadline);
      if (!next.ok()) return next.status().WithContext(method);
      if (next->contains("id") && (*next)["id"] == id) {
        if (next->contains("error")) return Status::Internal(method + ": " + (*next)["error"].dump());
        return (*next)["result"];
      }
      events_.push_back(std::move(next).value());
    }
  }

  const std::vector<Json>& events() {
    // Take what has arrived without waiting.
    while (true) {
      Result<Json> next = Next(Clock::now());
      if (!next.ok()) break;
      events_.push_back(std::move(next).value());
    }
    return events_;
  }

 private:
  Result<Json> Next(Clock::time_point deadline) {
    while (true) {
      const size_t end = buffer_.find('\0');
      if (end != std::string::npos) {
        Json message = Json::parse(buffer_.substr(0, end), nullptr, /*allow_exceptions=*/false);
        buffer_.erase(0, end + 1);
        if (message.is_discarded()) return Status::Corruption("the browser sent no JSON");
        return message;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      pollfd fd{from_, POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0) return Status::Timeout("no answer");
      char chunk[65536];
      const ssize_t n = read(from_, chunk, sizeof(chunk));
      if (n <= 0) return Status::IoError("the browser's pipe closed");
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  int next_id_ = 1;
  std::string buffer_;
  std::vector<Json> events_;
};

class ConsoleBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kChromium, X_OK), 0) << kChromium << " is missing: install the Debian package chromium "
                                          << "(scripts/setup does)";
    market_ = std::make_unique<ConsoleMarket>(/*providers=*/true);
    ASSERT_TRUE(market_->ok()) << market_->error();
    std::filesystem::create_directories(shots_);
    ASSERT_TRUE(browser_.Start(profile_.path(), shots_ + "/chromium.log").ok());
    Result<Json> target = browser_.Call("Target.createTarget", {{"url", "about:blank"}});
    ASSERT_TRUE(target.ok()) << target.status().ToString() << "\n" << e2e::ReadWholeFile(shots_ + "/chromium.log");
    Result<Json> attached =
        browser_.Call("Target.attachToTarget", {{"targetId", (*target)["targetId"]}, {"flatten", true}});
    ASSERT_TRUE(attached.ok()) << attached.status().ToString();
    session_ = (*attached)["sessionId"];
    for (const char* domain : {"Network.enable", "Page.enable", "Runtime.enable"}) {
      ASSERT_TRUE(Call(domain).ok()) << domain;
    }
    ASSERT_TRUE(Viewport(1280, 900, false).ok());
  }

  Result<Json> Call(const std::string& method, Json params = Json::object()) {
    return browser_.Call(method, std::move(params), session_);
  }
  Status Viewport(int width, int height, bool mobile) {
    return Call("Emulation.setDeviceMetricsOverride",
                {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", mobile}})
        .status();
  }
  // The value of a JavaScript expression in the page.
  Json Evaluate(const std::string& expression) {
    Result<Json> result = Call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}});
    if (!result.ok() || result->contains("exceptionDetails")) return nullptr;
    return (*result)["result"].value("value", Json());
  }
  // Polls `expression` until it is true (bounded by kStepTimeout).
  bool WaitFor(const std::string& expression) {
    return testing::Eventually([&] { return Evaluate(expression) == true; }, kStepTimeout);
  }
  void Open(const std::string& page) { ASSERT_TRUE(Call("Page.navigate", {{"url", market_->url() + "/#" + page}}).ok()); }
  // Types `text` into the element `id` as keyboard input would.
  void Type(const std::string& id, const std::string& text) {
    ASSERT_EQ(Evaluate("(() => { const e = document.getElementById('" + id + "'); e.focus(); e.value = ''; return document.activeElement === e; })()"), true) << id;
    ASSERT_TRUE(Call("Input.insertText", {{"text", text}}).ok());
  }
  // A left click in the middle of element `id`.
  void Click(const std::string& id) {
    const Json at = Evaluate("(() => { const r = document.getElementById('" + id +
                             "').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()");
    ASSERT_TRUE(at.is_array()) << id;
    for (const char* type : {"mousePressed", "mouseReleased"}) {
      ASSERT_TRUE(Call("Input.dispatchMouseEvent",
                       {{"type", type}, {"x", at[0]}, {"y", at[1]}, {"button", "left"}, {"clickCount", 1}})
                      .ok());
    }
  }
  void Screenshot(const std::string& name) {
    Result<Json> shot = Call("Page.captureScreenshot", {{"format", "png"}});
    ASSERT_TRUE(shot.ok()) << shot.status().ToString();
    const std::string png = Base64Decode((*shot)["data"]);
    ASSERT_TRUE(png.starts_with("\x89PNG")) << name;
    std::ofstream(shots_ + "/" + name + ".png", std::ios::binary) << png;
  }
  std::string Text(const std::string& selector) {
    const Json text = Evaluate("(document.querySelector('" + selector + "') || {}).textContent || ''");
    return text.is_string() ? text.get<std::string>() : "";
  }
  std::string Context() { return "page text:\n" + Text("main") + "\n" + market_->Logs(); }

  // Under the build folder: build/console-screenshots/.
  const std::string shots_ = std::string(GPUMART_BIN_DIR) + "/../console-screenshots";
  testing::TempDir profile_{"gpumart-chromium"};
  std::unique_ptr<ConsoleMarket> market_;
  Browser browser_;
  std::string session_;
};

TEST_F(ConsoleBrowserTest, ShowsOffersNarrowsThemLeasesNodeAndADryRunsWinner) {
  const std::string h100 = market_->node("h100").key_hex;
  const std::string rows = "document.querySelectorAll('#offers-table tbody tr')";

  // Offers: every device type of both providers, cheapest first, prices in AKT and uakt.
  Open("offers");
  ASSERT_TRUE(WaitFor(rows + ".length === 3")) << Context();
  EXPECT_EQ(Evaluate("Array.from(" + rows + ").map((r) => r.dataset.model).join(',')"), "a100,a100,h100");
  const std::string table = Text("#offers-table");
  EXPECT_NE(table.find("0.9 AKT/h"), std::string::npos) << table;
  EXPECT_NE(table.find("900,000 uakt/h"), std::string::npos) << table;
  EXPECT_NE(table.find("us-west"), std::string::npos) << table;
  Screenshot("offers");
  // Sorting: a click on "Price" sorts descending.
  ASSERT_TRUE(Evaluate("document.querySelector('#offers-table th[data-key=price]').id = 'sort-price'").is_string());
  Click("sort-price");
  ASSERT_TRUE(WaitFor(rows + "[0].dataset.model === 'h100'")) << Context();
  // A query narrows the table.
  Type("offers-query", "gpu_name=h100 num_gpus>=2");
  Click("offers-search");
  ASSERT_TRUE(WaitFor(rows + ".length === 1")) << Context();
  EXPECT_EQ(Evaluate(rows + "[0].dataset.provider"), h100);
  EXPECT_NE(Text("#offers-status").find("1 of 1"), std::string::npos) << Text("#offers-status");
  Screenshot("offers-query");
  // A bad query says why, in the page.
  Type("offers-query", "gpu_nam=h100");
  Click("offers-search");
  ASSERT_TRUE(WaitFor("document.getElementById('offers-status').classList.contains('error')")) << Context();
  EXPECT_NE(Text("#offers-status").find("unknown field"), std::string::npos) << Text("#offers-status");

  // Leases: the lease, active, with its price and accrued cost.
  Open("leases");
  ASSERT_TRUE(WaitFor("document.querySelectorAll('#leases-table tbody tr').length === 1")) << Context();
  EXPECT_EQ(Evaluate("document.querySelector('#leases-table tbody tr').dataset.lease"), market_->lease()["id"]);
  EXPECT_NE(Text("#leases-table").find("active"), std::string::npos);
  Screenshot("leases");

  // Node: the relay's status panels.
  Open("node");
  ASSERT_TRUE(WaitFor("document.querySelectorAll('#node-panels .panel').length >= 3")) << Context();
  EXPECT_NE(Text("#node-panels").find("relay"), std::string::npos);
  Screenshot("node");

  // Dry run: the LLM SDL, pasted; the H100 provider wins (the most preferred option).
  Open("dryrun");
  ASSERT_TRUE(WaitFor("!document.getElementById('page-dryrun').hidden")) << Context();
  Type("dryrun-sdl", e2e::ReadWholeFile(kLlmFallbacks));
  Click("dryrun-run");
  ASSERT_TRUE(WaitFor("document.querySelector('#dryrun-result tr.winner') !== null")) << Context();
  EXPECT_EQ(Evaluate("document.querySelector('#dryrun-result tr.winner').dataset.provider"), h100);
  Screenshot("dryrun");

  // On a phone's screen.
  ASSERT_TRUE(Viewport(390, 844, true).ok());
  ASSERT_EQ(Evaluate("document.getElementById('offers-query').value = ''"), "");
  Open("offers");
  ASSERT_TRUE(WaitFor(rows + ".length === 3")) << Context();
  Screenshot("offers-phone");

  // Everything the page loaded came from the node's own host:port.
  size_t requests = 0;
  for (const Json& event : browser_.events()) {
    if (event.value("method", "") != "Network.requestWillBeSent") continue;
    const std::string url = event["params"]["request"]["url"];
    ++requests;
    EXPECT_TRUE(url.starts_with(market_->url() + "/")) << "the page loaded " << url;
  }
  EXPECT_GE(requests, 8u);  // the page, its script, style and icon, and its API calls
}

}  // namespace
}  // namespace gpumart::console_test
