#include "node/metrics/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <map>

namespace gpumart::metrics {

namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// Ascending and finite: what a histogram's bounds must be.
bool ValidBounds(const std::vector<double>& bounds) {
  if (bounds.size() > kMaxHistogramBuckets) return false;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) return false;
    if (i > 0 && !(bounds[i - 1] < bounds[i])) return false;
  }
  return true;
}

bool ValidLabels(const Labels& labels, bool histogram) {
  for (const auto& [name, value] : labels) {
    if (!IsValidLabelName(name) || (histogram && name == "le")) return false;
  }
  return true;
}

void SortLabels(Labels& labels) {
  std::sort(labels.begin(), labels.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

bool HasDuplicateLabelNames(const Labels& sorted) {
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1].first == sorted[i].first) return true;
  }
  return false;
}

// name{a="x",b="y"} or name{a="x",le="0.5"}; `extra` is a label added last (a bucket's le).
void WriteSeriesName(std::string& out, std::string_view name, const Labels& labels,
                     const std::pair<std::string_view, std::string>* extra = nullptr) {
  out += name;
  if (labels.empty() && extra == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [label, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += label;
    out += "=\"";
    out += EscapeLabelValue(value);
    out += '"';
  }
  if (extra != nullptr) {
    if (!first) out += ',';
    out += extra->first;
    out += "=\"";
    out += extra->second;
    out += '"';
  }
  out += '}';
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameChar(c) || c == ':'; });
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (error != std::errc()) return "NaN";  // cannot happen: 64 bytes hold any double
  return std::string(buffer, end);
}

// ---------------------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  assert(ValidBounds(upper_bounds_) && "histogram bounds must be ascending, finite and few");
  if (!ValidBounds(upper_bounds_)) upper_bounds_.clear();
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(upper_bounds_.size() + 1);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // The first bound >= value (le is "less than or equal"); past the last: +Inf.
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Read() const {
  HistogramSnapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  snapshot.cumulative.resize(upper_bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = running;
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, size_t count) {
  std::vector<double> bounds;
  double bound = start;
  for (size_t i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// ---------------------------------------------------------------------------------------------

std::string_view Scrape::TypeName(Type type) {
  switch (type) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

Scrape::Series* Scrape::Add(std::string_view name, std::string_view help, Type type, Labels labels) {
  SortLabels(labels);
  if (series_ >= kMaxSeriesPerScrape || !IsValidMetricName(name) ||
      !ValidLabels(labels, type == Type::kHistogram) || HasDuplicateLabelNames(labels)) {
    ++refused_;
    return nullptr;
  }
  auto family = std::find_if(families_.begin(), families_.end(), [&](const Family& f) { return f.name == name; });
  if (family == families_.end()) {
    families_.push_back(Family{std::string(name), std::string(help), type, {}});
    family = families_.end() - 1;
  } else if (family->type != type) {
    ++refused_;
    return nullptr;
  }
  ++series_;
  family->series.push_back(Series{std::move(labels), 0, 0, {}});
  return &family->series.back();
}

void Scrape::Counter(std::string_view name, std::string_view help, Labels labels, uint64_t value) {
  if (Series* series = Add(name, help, Type::kCounter, std::move(labels))) series->integer = value;
}

void Scrape::Gauge(std::string_view name, std::string_view help, Labels labels, double value) {
  if (Series* series = Add(name, help, Type::kGauge, std::move(labels))) series->value = value;
}

void Scrape::Histogram(std::string_view name, std::string_view help, Labels labels, HistogramSnapshot snapshot) {
  if (!ValidBounds(snapshot.upper_bounds) || snapshot.cumulative.size() != snapshot.upper_bounds.size() + 1 ||
      !std::is_sorted(snapshot.cumulative.begin(), snapshot.cumulative.end()) ||
      snapshot.cumulative.back() != snapshot.count) {
    ++refused_;
    return;
  }
  if (Series* series = Add(name, help, Type::kHistogram, std::move(labels))) series->histogram = std::move(snapshot);
}

// ---------------------------------------------------------------------------------------------

void Registry::Own(std::unique_ptr<Owned> owned) {
  SortLabels(owned->labels);
  std::lock_guard<std::mutex> lock(mutex_);
#ifndef NDEBUG
  for (const auto& other : owned_) {
    assert(!(other->name == owned->name && other->labels == owned->labels) && "a series registered twice");
  }
#endif
  owned_.push_back(std::move(owned));
}

Counter& Registry::AddCounter(std::string name, std::string help, Labels labels) {
  auto owned = std::make_unique<Owned>(Owned{std::move(name), std::move(help), std::move(labels), {}, {}, {}});
  owned->counter = std::make_unique<metrics::Counter>();
  metrics::Counter& counter = *owned->counter;
  Own(std::move(owned));
  return counter;
}

Gauge& Registry::AddGauge(std::string name, std::string help, Labels labels) {
  auto owned = std::make_unique<Owned>(Owned{std::move(name), std::move(help), std::move(labels), {}, {}, {}});
  owned->gauge = std::make_unique<metrics::Gauge>();
  metrics::Gauge& gauge = *owned->gauge;
  Own(std::move(owned));
  return gauge;
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<double> upper_bounds, Labels labels) {
  auto owned = std::make_unique<Owned>(Owned{std::move(name), std::move(help), std::move(labels), {}, {}, {}});
  owned->histogram = std::make_unique<metrics::Histogram>(std::move(upper_bounds));
  metrics::Histogram& histogram = *owned->histogram;
  Own(std::move(owned));
  return histogram;
}

void Registry::AddCollector(std::function<void(Scrape&)> collect) {
  std::lock_guard<std::mutex> lock(mutex_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Expose() const {
  std::lock_guard<std::mutex> scrape_lock(scrape_mutex_);
  Scrape scrape;
  std::vector<std::function<void(Scrape&)>> collectors;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& owned : owned_) {
      if (owned->counter) scrape.Counter(owned->name, owned->help, owned->labels, owned->counter->Value());
      if (owned->gauge) scrape.Gauge(owned->name, owned->help, owned->labels, owned->gauge->Value());
      if (owned->histogram) scrape.Histogram(owned->name, owned->help, owned->labels, owned->histogram->Read());
    }
    collectors = collectors_;
  }
  // Outside the lock: a collector may take a while (it asks actors) and may register instruments.
  for (const auto& collect : collectors) collect(scrape);

  std::sort(scrape.families_.begin(), scrape.families_.end(),
            [](const Scrape::Family& a, const Scrape::Family& b) { return a.name < b.name; });
  uint64_t refused = scrape.refused_;
  std::string out;
  for (Scrape::Family& family : scrape.families_) {
    std::stable_sort(family.series.begin(), family.series.end(),
                     [](const Scrape::Series& a, const Scrape::Series& b) { return a.labels < b.labels; });
    out += "# HELP ";
    out += family.name;
    out += ' ';
    out += EscapeHelp(family.help);
    out += "\n# TYPE ";
    out += family.name;
    out += ' ';
    out += Scrape::TypeName(family.type);
    out += '\n';
    for (size_t i = 0; i < family.series.size(); ++i) {
      const Scrape::Series& series = family.series[i];
      if (i > 0 && family.series[i - 1].labels == series.labels) {  // the same series twice
        ++refused;
        continue;
      }
      switch (family.type) {
        case Scrape::Type::kCounter:
          WriteSeriesName(out, family.name, series.labels);
          out += ' ';
          out += std::to_string(series.integer);
          out += '\n';
          break;
        case Scrape::Type::kGauge:
          WriteSeriesName(out, family.name, series.labels);
          out += ' ';
          out += FormatValue(series.value);
          out += '\n';
          break;
        case Scrape::Type::kHistogram: {
          const HistogramSnapshot& h = series.histogram;
          const std::string bucket = family.name + "_bucket";
          for (size_t b = 0; b < h.cumulative.size(); ++b) {
            const std::pair<std::string_view, std::string> le{
                "le", b < h.upper_bounds.size() ? FormatValue(h.upper_bounds[b]) : std::string("+Inf")};
            WriteSeriesName(out, bucket, series.labels, &le);
            out += ' ';
            out += std::to_string(h.cumulative[b]);
            out += '\n';
          }
          WriteSeriesName(out, family.name + "_sum", series.labels);
          out += ' ';
          out += FormatValue(h.sum);
          out += '\n';
          WriteSeriesName(out, family.name + "_count", series.labels);
          out += ' ';
          out += std::to_string(h.count);
          out += '\n';
          break;
        }
      }
    }
  }
  if (refused > 0) refused_.fetch_add(refused, std::memory_order_relaxed);
  return out;
}

}  // namespace gpumart::metrics
