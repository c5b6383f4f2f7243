// LedgerStore::ReservationsOf: a provider's reservations after a restart (node/provider_actor.h
// restores them into its bid engine).
#include <gtest/gtest.h>

#include "ledger/store.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/market/test_messages.h"

namespace gpumart::ledger {
namespace {

using testing::kStartMs;
using testing::OpenOrDie;
using testing::Parties;
using testing::TempDir;
using testing::WriteOne;

TEST(ReservationsOfTest, ListsTheProvidersReservationsOnlyAndIsBounded) {
  TempDir dir;
  Parties parties;
  auto store = OpenOrDie(dir.Sub("ledger"));
  const auto& provider = parties.provider().public_key();
  const auto order = parties.Order();
  const auto bid = parties.Bid(order.id);
  const auto expired_bid = parties.Bid(order.id, kStartMs + 1);
  auto usage = market::UsageOf(order.body, bid.body.services);
  ASSERT_TRUE(usage.ok());
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{bid.id, provider, kStartMs + 30'000, *usage}}).ok());
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{expired_bid.id, provider, kStartMs - 1, *usage}}).ok());
  market::MessageId other_bid{};
  other_bid.fill(0x42);
  const market::PublicKey other = market::Identity::Generate().public_key();
  ASSERT_TRUE(WriteOne(*store, Reserve{Reservation{other_bid, other, kStartMs + 30'000, *usage}}).ok());

  auto listed = store->ReservationsOf(provider, 10);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 2u);  // expired ones too: the restart releases them
  for (const Reservation& reservation : *listed) {
    EXPECT_EQ(reservation.provider, provider);
    EXPECT_EQ(reservation.usage, *usage);
  }
  EXPECT_EQ(store->ReservationsOf(provider, 1).status().code(), Status::Code::kLimitExceeded);
  ASSERT_TRUE(WriteOne(*store, Release{bid.id}).ok());
  EXPECT_EQ(store->ReservationsOf(provider, 10)->size(), 1u);
  EXPECT_TRUE(store->ReservationsOf(market::Identity::Generate().public_key(), 10)->empty());
}

}  // namespace
}  // namespace gpumart::ledger
