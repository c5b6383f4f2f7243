// Metrics: counters, gauges and histograms that any thread updates cheaply (one relaxed atomic
// operation, never a lock), and their Prometheus text exposition, version 0.0.4 (docs/METRICS.md).
//
// Two ways a value gets into a scrape:
// - an instrument the registry owns (AddCounter, AddGauge, AddHistogram): the code that counts
//   keeps a reference (stable for the registry's life) and updates it from any thread;
// - a collector (AddCollector): a function run at every scrape that reports values kept
//   elsewhere (atomics in a struct that already counts, a snapshot an actor answers with), so
//   nothing is counted twice.
//
// Names follow Prometheus conventions (a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*, a label
// name [a-zA-Z_][a-zA-Z0-9_]* without a leading "__"; "le" belongs to histograms). A series whose
// names are invalid, whose family was declared with another type, or past kMaxSeriesPerScrape is
// left out of the scrape and counted (Registry::refused_series), never a crash: names are
// constants in code, label values may come from config (a GPU model) and are escaped.
//
// The exposition is deterministic: families sorted by name, series of a family sorted by their
// labels, histogram buckets in ascending order and then +Inf, _sum, _count.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpumart::metrics {

// The HTTP Content-Type of Registry::Expose's text.
constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";
// Series one scrape reports at most (all families together); more are left out and counted.
constexpr size_t kMaxSeriesPerScrape = 16 * 1024;
// Buckets one histogram has at most (besides +Inf).
constexpr size_t kMaxHistogramBuckets = 64;

// (name, value) pairs; the order given does not matter (series are sorted by name).
using Labels = std::vector<std::pair<std::string, std::string>>;

// A count of events since the process started; only goes up.
class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// What a histogram held at one moment: cumulative[i] counts observations <= upper_bounds[i];
// the last element (one more than upper_bounds) counts all of them (+Inf), and equals count.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count = 0;
};

// Observations counted into fixed buckets. Observe costs one bucket search and two relaxed
// atomic adds; a scrape reads the buckets without stopping observers (its _count is the sum
// of the buckets it read, so _count always equals the +Inf bucket).
class Histogram {
 public:
  // `upper_bounds`: ascending, finite, at most kMaxHistogramBuckets (programmer error otherwise:
  // asserted; in a release build the bad bounds are dropped).
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is ignored (it would poison the sum).
  void Observe(double value);
  HistogramSnapshot Read() const;
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; last is +Inf
  std::atomic<double> sum_{0};
};

// `count` bounds start, start*factor, start*factor^2, ...
std::vector<double> ExponentialBuckets(double start, double factor, size_t count);
// Latencies from 100 microseconds to about 10 seconds (seconds, a 1-2.5-5 series).
std::vector<double> LatencyBuckets();

// What a collector reports during one scrape. `help` is the family's; the first series of a
// family fixes its type and help.
class Scrape {
 public:
  void Counter(std::string_view name, std::string_view help, Labels labels, uint64_t value);
  void Gauge(std::string_view name, std::string_view help, Labels labels, double value);
  void Histogram(std::string_view name, std::string_view help, Labels labels, HistogramSnapshot snapshot);

 private:
  friend class Registry;
  enum class Type : uint8_t { kCounter, kGauge, kHistogram };
  static std::string_view TypeName(Type type);  // as # TYPE writes it
  struct Series {
    Labels labels;
    uint64_t integer = 0;  // a counter's value
    double value = 0;      // a gauge's value
    HistogramSnapshot histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type = Type::kCounter;
    std::vector<Series> series;
  };
  Series* Add(std::string_view name, std::string_view help, Type type, Labels labels);

  std::vector<Family> families_;
  size_t series_ = 0;
  uint64_t refused_ = 0;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Instruments owned by the registry; the reference stays valid as long as the registry.
  // Thread-safe. Each (name, labels) once (programmer error otherwise: asserted).
  Counter& AddCounter(std::string name, std::string help, Labels labels = {});
  Gauge& AddGauge(std::string name, std::string help, Labels labels = {});
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> upper_bounds, Labels labels = {});
  // Runs at every scrape, on the scraping thread, in the order added; must be quick and must not
  // block on an actor for long (ask with a timeout; on none, report nothing rather than a guess).
  void AddCollector(std::function<void(Scrape&)> collect);

  // The text exposition (version 0.0.4) of every instrument and collector. Scrapes run one at a
  // time (collectors need not be reentrant).
  std::string Expose() const;
  // Series left out of scrapes so far (invalid names, type clashes, over kMaxSeriesPerScrape).
  uint64_t refused_series() const { return refused_.load(std::memory_order_relaxed); }

 private:
  struct Owned {
    std::string name;
    std::string help;
    Labels labels;
    std::unique_ptr<metrics::Counter> counter;
    std::unique_ptr<metrics::Gauge> gauge;
    std::unique_ptr<metrics::Histogram> histogram;
  };
  void Own(std::unique_ptr<Owned> owned);  // complete before it is visible to a scrape

  mutable std::mutex mutex_;        // guards owned_ and collectors_
  mutable std::mutex scrape_mutex_;  // one scrape at a time
  std::vector<std::unique_ptr<Owned>> owned_;
  std::vector<std::function<void(Scrape&)>> collectors_;
  mutable std::atomic<uint64_t> refused_{0};
};

// The exposition's escaping and number format, exposed for tests and other writers.
// A label value: backslash, double quote and line feed escaped (\\, \", \n).
std::string EscapeLabelValue(std::string_view value);
// A HELP text: backslash and line feed escaped (\\, \n).
std::string EscapeHelp(std::string_view help);
// A sample value: shortest round-trip decimal; +Inf, -Inf, NaN.
std::string FormatValue(double value);
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

}  // namespace gpumart::metrics
