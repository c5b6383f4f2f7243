// Child process of crash_test: writes leases into the ledger at argv[1] through the real
// group-commit writer, from several threads, until it is killed. Every lease acknowledged as
// durable has its 32-byte id written to stdout (a pipe the test reads) the moment the ack
// arrives, so the parent knows exactly what must survive a SIGKILL.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "actors/actor_system.h"
#include "actors/clock.h"
#include "actors/outbox.h"
#include "ledger/ledger_actor.h"
#include "tests/ledger/test_leases.h"

namespace {

constexpr int kWriterThreads = 8;
constexpr int kInFlightPerThread = 4;

bool WriteAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written <= 0) return false;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gpumart;
  if (argc != 2) {
    std::fprintf(stderr, "usage: ledger_crash_child LEDGER_DIR\n");
    return 2;
  }
  actors::ActorSystem system;
  auto actor = ledger::LedgerActor::Open(system, argv[1], {}, SystemClock::Instance());
  if (!actor.ok()) {
    std::fprintf(stderr, "ledger_crash_child: %s\n", actor.status().ToString().c_str());
    return 1;
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriterThreads; ++t) {
    writers.emplace_back([&actor, &system] {
      actors::Outbox outbox(system);
      ledger::testing::Parties parties;
      std::atomic<int> in_flight{0};
      for (;;) {
        while (in_flight.load() >= kInFlightPerThread) std::this_thread::yield();
        const auto lease = parties.FreshLease();
        ++in_flight;
        (*actor)->Submit(outbox, ledger::RecordLease{lease}, [id = lease.id, &in_flight](const Status& status) {
          // The writer thread is the only one acknowledging, so ids never interleave.
          if (status.ok() && !WriteAll(STDOUT_FILENO, id.data(), id.size())) _exit(3);
          if (!status.ok()) {
            std::fprintf(stderr, "ledger_crash_child: write failed: %s\n", status.ToString().c_str());
            _exit(4);
          }
          --in_flight;
        });
      }
    });
  }
  for (auto& writer : writers) writer.join();
  return 0;
}
