// node/cli.h: the one error idiom at the command boundary. A command body returns its exit
// status; a failure prints "gpumart <command>: <message>"; an exception never escapes.
#include "node/cli.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <new>
#include <sstream>
#include <stdexcept>

namespace gpumart::node {
namespace {

struct Harness {
  std::ostringstream out;
  std::ostringstream err;
  CliContext context{out, err};
  CLI::App app{"test", "gpumart"};

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "gpumart");
    std::vector<const char*> argv;
    for (const auto& arg : args) argv.push_back(arg.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
    return context.exit_code;
  }
};

TEST(CliTest, ExceptionsInACommandBecomeAClearErrorAndExitOne) {
  Harness h;
  CLI::App* group = h.app.add_subcommand("ledger");
  CLI::App* verify = group->add_subcommand("verify");
  SetCommandBody(*verify, h.context, []() -> int { throw std::bad_alloc(); });
  CLI::App* other = h.app.add_subcommand("odd");
  SetCommandBody(*other, h.context, []() -> int { throw 42; });
  EXPECT_EQ(h.Run({"ledger", "verify"}), kExitFailure);
  EXPECT_EQ(h.err.str(), "gpumart ledger verify: internal error: out of memory\n");
  h.err.str("");
  EXPECT_EQ(h.Run({"odd"}), kExitFailure);
  EXPECT_EQ(h.err.str(), "gpumart odd: internal error: unknown exception\n");
  EXPECT_EQ(h.out.str(), "");
}

TEST(CliTest, FailNamesTheCommandAndMakesPeerTextPrintable) {
  Harness h;
  CLI::App* leases = h.app.add_subcommand("leases");
  SetCommandBody(*leases, h.context, [&h] {
    return h.context.Fail(Status::Corruption("denom u\x1b[2J\xff\nsecond line"), kExitFailure);
  });
  EXPECT_EQ(h.Run({"leases"}), kExitFailure);
  EXPECT_EQ(h.err.str(), "gpumart leases: denom u\uFFFD[2J\uFFFD\nsecond line\n");
}

TEST(CliTest, BodiesReturnTheirExitStatus) {
  Harness h;
  CLI::App* ok = h.app.add_subcommand("fine");
  SetCommandBody(*ok, h.context, [] { return kExitOk; });
  CLI::App* usage = h.app.add_subcommand("usage");
  SetCommandBody(*usage, h.context, [&h] { return h.context.Fail("--x must be a number", kExitUsage); });
  EXPECT_EQ(h.Run({"fine"}), kExitOk);
  EXPECT_EQ(h.err.str(), "");
  EXPECT_EQ(h.Run({"usage"}), kExitUsage);
  EXPECT_EQ(h.err.str(), "gpumart usage: --x must be a number\n");
}

}  // namespace
}  // namespace gpumart::node
