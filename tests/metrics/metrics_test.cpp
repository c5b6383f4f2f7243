#include "node/metrics/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace gpumart::metrics {
namespace {

TEST(MetricsTest, ExposesCountersAndGaugesSortedByFamilyThenLabels) {
  Registry registry;
  registry.AddGauge("zz_peers", "Ready peers.", {{"direction", "outbound"}}).Set(3);
  registry.AddGauge("zz_peers", "Ready peers.", {{"direction", "inbound"}}).Set(2);
  Counter& orders = registry.AddCounter("aa_orders_total", "Orders seen.");
  orders.Increment();
  orders.Increment(4);
  EXPECT_EQ(registry.Expose(),
            "# HELP aa_orders_total Orders seen.\n"
            "# TYPE aa_orders_total counter\n"
            "aa_orders_total 5\n"
            "# HELP zz_peers Ready peers.\n"
            "# TYPE zz_peers gauge\n"
            "zz_peers{direction=\"inbound\"} 2\n"
            "zz_peers{direction=\"outbound\"} 3\n");
  EXPECT_EQ(registry.refused_series(), 0u);
}

TEST(MetricsTest, LabelsAreWrittenInNameOrder) {
  Registry registry;
  registry.AddGauge("g", "h", {{"b", "2"}, {"a", "1"}}).Set(1);
  EXPECT_NE(registry.Expose().find("g{a=\"1\",b=\"2\"} 1\n"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain h100 80Gi"), "plain h100 80Gi");
  // A HELP text keeps its quotes: only backslash and line feed are escaped there.
  EXPECT_EQ(EscapeHelp("one\\two\n\"three\""), "one\\\\two\\n\"three\"");
  Registry registry;
  registry.AddGauge("g", "line one\nline \\ two", {{"model", "h\"100\\\n"}}).Set(1);
  EXPECT_EQ(registry.Expose(),
            "# HELP g line one\\nline \\\\ two\n"
            "# TYPE g gauge\n"
            "g{model=\"h\\\"100\\\\\\n\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& latency = registry.AddHistogram("lat_seconds", "Latency.", {0.5, 1, 2}, {{"op", "commit"}});
  latency.Observe(0.25);  // <= 0.5
  latency.Observe(0.5);   // le is inclusive
  latency.Observe(1.5);   // <= 2
  latency.Observe(4);     // only +Inf
  latency.Observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  EXPECT_EQ(registry.Expose(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{op=\"commit\",le=\"0.5\"} 2\n"
            "lat_seconds_bucket{op=\"commit\",le=\"1\"} 2\n"
            "lat_seconds_bucket{op=\"commit\",le=\"2\"} 3\n"
            "lat_seconds_bucket{op=\"commit\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{op=\"commit\"} 6.25\n"
            "lat_seconds_count{op=\"commit\"} 4\n");
}

TEST(MetricsTest, HistogramWithoutLabels) {
  Registry registry;
  Histogram& h = registry.AddHistogram("h_seconds", "H.", {1, 2});
  h.Observe(1.5);
  h.Observe(3);
  EXPECT_EQ(registry.Expose(),
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"1\"} 0\n"
            "h_seconds_bucket{le=\"2\"} 1\n"
            "h_seconds_bucket{le=\"+Inf\"} 2\n"
            "h_seconds_sum 4.5\n"
            "h_seconds_count 2\n");
  const HistogramSnapshot snapshot = h.Read();
  EXPECT_EQ(snapshot.cumulative, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(snapshot.count, 2u);
}

TEST(MetricsTest, FormatsValuesLikePrometheus) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(-1.5), "-1.5");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  // Round-trips: the shortest text that reads back as the same double.
  EXPECT_EQ(std::stod(FormatValue(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(MetricsTest, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("gpumart_gossip_frames_total"));
  EXPECT_TRUE(IsValidMetricName("a:b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_TRUE(IsValidLabelName("reason"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("9x"));
}

TEST(MetricsTest, BadSeriesAreLeftOutAndCounted) {
  Registry registry;
  registry.AddCollector([](Scrape& scrape) {
    scrape.Counter("ok_total", "Fine.", {}, 1);
    scrape.Counter("bad-name_total", "Refused: a dash.", {}, 1);
    scrape.Counter("ok2_total", "Refused: a bad label.", {{"__reserved", "x"}}, 1);
    scrape.Gauge("ok_total", "Refused: the family is a counter.", {{"a", "b"}}, 1);
    scrape.Histogram("h", "Refused: le is the histogram's.", {{"le", "1"}}, HistogramSnapshot{{1}, {0, 0}, 0, 0});
    scrape.Histogram("h2", "Refused: inconsistent.", {}, HistogramSnapshot{{1}, {3, 2}, 0, 2});
    scrape.Counter("ok_total", "Refused: the same series twice.", {}, 2);
    scrape.Counter("dup_total", "Refused: a label given twice.", {{"a", "1"}, {"a", "2"}}, 1);
  });
  EXPECT_EQ(registry.Expose(),
            "# HELP ok_total Fine.\n"
            "# TYPE ok_total counter\n"
            "ok_total 1\n");
  EXPECT_EQ(registry.refused_series(), 7u);
}

TEST(MetricsTest, CollectorsReportValuesKeptElsewhere) {
  Registry registry;
  std::atomic<uint64_t> recorded{7};
  registry.AddCollector([&](Scrape& scrape) {
    scrape.Counter("feed_total", "Feed.", {{"outcome", "recorded"}}, recorded.load());
    scrape.Counter("feed_total", "Feed.", {{"outcome", "dropped"}}, 1);
  });
  EXPECT_EQ(registry.Expose(),
            "# HELP feed_total Feed.\n"
            "# TYPE feed_total counter\n"
            "feed_total{outcome=\"dropped\"} 1\n"
            "feed_total{outcome=\"recorded\"} 7\n");
  recorded = 9;
  EXPECT_NE(registry.Expose().find("feed_total{outcome=\"recorded\"} 9\n"), std::string::npos);
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  Registry registry;
  Counter& counter = registry.AddCounter("c_total", "C.");
  Gauge& gauge = registry.AddGauge("g", "G.");
  Histogram& histogram = registry.AddHistogram("h_seconds", "H.", LatencyBuckets());
  constexpr int kThreads = 4;
  constexpr int kEach = 10'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        counter.Increment();
        gauge.Add(1);
        histogram.Observe(0.002);
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 20; ++i) {
      // A scrape while observers run is consistent: _count equals the +Inf bucket.
      const HistogramSnapshot s = histogram.Read();
      EXPECT_EQ(s.cumulative.back(), s.count);
      (void)registry.Expose();
    }
  });
  for (auto& thread : threads) thread.join();
  scraper.join();
  EXPECT_EQ(counter.Value(), uint64_t{kThreads * kEach});
  EXPECT_EQ(gauge.Value(), double{kThreads * kEach});
  const HistogramSnapshot s = histogram.Read();
  EXPECT_EQ(s.count, uint64_t{kThreads * kEach});
  EXPECT_NEAR(s.sum, 0.002 * kThreads * kEach, 1e-6);
}

TEST(MetricsTest, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  const std::vector<double> latency = LatencyBuckets();
  ASSERT_FALSE(latency.empty());
  EXPECT_TRUE(std::is_sorted(latency.begin(), latency.end()));
  EXPECT_LE(latency.size(), kMaxHistogramBuckets);
}

}  // namespace
}  // namespace gpumart::metrics
