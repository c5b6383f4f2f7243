#include "market/yaml_tree.h"

#include "market/boundary.h"

#include <yaml.h>

#include <algorithm>
#include <limits>
#include <new>
#include <unordered_map>
#include <utility>

namespace gpumart::market {

// ---------------------------------------------------------------------------------------------
// YamlNode

namespace {
constexpr std::string_view kQuotedScalarTag = "!";  // yaml-cpp's non-specific tags
constexpr std::string_view kPlainTag = "?";
}  // namespace

YamlKind YamlNode::Kind() const { return tree_ == nullptr ? YamlKind::kUndefined : tree_->nodes_[index_].kind; }

std::string_view YamlNode::Scalar() const {
  if (!IsScalar()) return {};
  const YamlTree::Node& node = tree_->nodes_[index_];
  return std::string_view(tree_->text_).substr(node.text_offset, node.text_size);
}

std::string_view YamlNode::Tag() const {
  const YamlKind kind = Kind();
  if (kind == YamlKind::kUndefined || kind == YamlKind::kNull) return {};
  const YamlTree::Node& node = tree_->nodes_[index_];
  if (node.tag_size != 0) return std::string_view(tree_->text_).substr(node.tag_offset, node.tag_size);
  return kind == YamlKind::kScalar && !node.plain ? kQuotedScalarTag : kPlainTag;
}

bool YamlNode::IsPlain() const { return IsScalar() && tree_->nodes_[index_].plain; }

size_t YamlNode::Line() const { return tree_ == nullptr ? 0 : tree_->nodes_[index_].line; }

size_t YamlNode::Column() const { return tree_ == nullptr ? 0 : tree_->nodes_[index_].column; }

size_t YamlNode::size() const {
  const YamlKind kind = Kind();
  if (kind == YamlKind::kSequence) return tree_->nodes_[index_].child_count;
  if (kind == YamlKind::kMap) return tree_->nodes_[index_].child_count / 2;
  return 0;
}

YamlNode YamlNode::Item(size_t index) const {
  if (!IsSequence() || index >= size()) return {};
  return YamlNode(tree_, tree_->children_[tree_->nodes_[index_].first_child + index]);
}

YamlMapEntry YamlNode::Entry(size_t index) const {
  if (!IsMap() || index >= size()) return {};
  const uint32_t first = tree_->nodes_[index_].first_child + static_cast<uint32_t>(2 * index);
  return {YamlNode(tree_, tree_->children_[first]), YamlNode(tree_, tree_->children_[first + 1])};
}

YamlNode YamlNode::Find(std::string_view key) const {
  for (const YamlMapEntry& entry : Entries()) {
    if (entry.key.IsScalar() && entry.key.Scalar() == key) return entry.value;
  }
  return {};
}

YamlNode::ItemRange YamlNode::Items() const { return ItemRange(*this, IsSequence() ? size() : 0); }

YamlNode::EntryRange YamlNode::Entries() const { return EntryRange(*this, IsMap() ? size() : 0); }

// ---------------------------------------------------------------------------------------------
// Loading

namespace {

// Owns a libyaml parser, so every way out of Parse frees it.
class LibyamlParser {
 public:
  explicit LibyamlParser(std::string_view text) {
    initialized_ = yaml_parser_initialize(&parser_) != 0;
    if (initialized_) {
      yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
    }
  }
  ~LibyamlParser() {
    if (initialized_) yaml_parser_delete(&parser_);
  }
  LibyamlParser(const LibyamlParser&) = delete;
  LibyamlParser& operator=(const LibyamlParser&) = delete;

  bool initialized() const { return initialized_; }
  yaml_parser_t* get() { return &parser_; }

 private:
  yaml_parser_t parser_{};
  bool initialized_ = false;
};

// Owns one event; libyaml zeroes it on failure, and deleting a zeroed event is a no-op.
class LibyamlEvent {
 public:
  LibyamlEvent() = default;
  ~LibyamlEvent() { yaml_event_delete(&event_); }
  LibyamlEvent(const LibyamlEvent&) = delete;
  LibyamlEvent& operator=(const LibyamlEvent&) = delete;

  yaml_event_t* get() { return &event_; }
  const yaml_event_t& operator*() const { return event_; }

 private:
  yaml_event_t event_{};
};

std::string_view View(const yaml_char_t* text, size_t size) {
  return text == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(text), size);
}

std::string_view View(const yaml_char_t* text) {
  return text == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(text));
}

// Names from the text are cut so an error stays one readable line.
std::string Shown(std::string_view text) {
  constexpr size_t kShownBytes = 64;
  std::string out(text.substr(0, kShownBytes));
  if (text.size() > kShownBytes) out += "...";
  return out;
}

std::string At(size_t line, size_t column) {
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// yaml-cpp's null forms: only plain, untagged scalars can be null.
bool IsNullScalar(const yaml_event_t& event) {
  if (event.data.scalar.tag != nullptr || event.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const std::string_view value = View(event.data.scalar.value, event.data.scalar.length);
  return value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL";
}

// libyaml's reader (bad UTF-8, control characters) reports a byte offset rather than a mark.
void LineAndColumnOf(std::string_view text, size_t offset, size_t* line, size_t* column) {
  offset = std::min(offset, text.size());
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++*line;
      *column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {  // columns count characters
      ++*column;
    }
  }
}

Status SyntaxError(const yaml_parser_t& parser, std::string_view text) {
  if (parser.error == YAML_MEMORY_ERROR) return Status::LimitExceeded("out of memory while reading YAML");
  size_t line = parser.problem_mark.line + 1;
  size_t column = parser.problem_mark.column + 1;
  if (parser.error == YAML_READER_ERROR) LineAndColumnOf(text, parser.problem_offset, &line, &column);
  const std::string_view problem = parser.problem != nullptr ? std::string_view(parser.problem) : "unknown error";
  return Status::InvalidArgument("invalid YAML at " + At(line, column) + ": " + std::string(problem));
}

}  // namespace

// Turns libyaml's events for the first document into a YamlTree, without recursion: the open
// collections are a stack, and the finished children of all of them wait on one shared list until
// their collection ends and takes its contiguous slice.
class YamlTreeBuilder {
 public:
  YamlTreeBuilder(YamlTree* tree, std::string_view text, const YamlLimits& limits)
      : tree_(tree), text_(text), limits_(limits) {}

  Status Build() {
    LibyamlParser parser(text_);
    if (!parser.initialized()) return Status::LimitExceeded("out of memory while reading YAML");
    constexpr size_t kBytesPerNodeGuess = 16;  // saves regrowing the arrays for typical files
    tree_->nodes_.reserve(text_.size() / kBytesPerNodeGuess);
    tree_->children_.reserve(text_.size() / kBytesPerNodeGuess);
    tree_->text_.reserve(text_.size());
    bool done = false;
    while (!done) {
      LibyamlEvent event;
      if (!yaml_parser_parse(parser.get(), event.get())) return SyntaxError(*parser.get(), text_);
      Status status = OnEvent(*event, &done);
      if (!status.ok()) return status;
    }
    if (!has_root_) {  // an empty stream reads as null, as yaml-cpp's Load does
      tree_->nodes_.push_back(YamlTree::Node{});
      tree_->nodes_.back().line = 1;
      tree_->nodes_.back().column = 1;
      tree_->root_ = static_cast<uint32_t>(tree_->nodes_.size() - 1);
    }
    return Status::Ok();
  }

 private:
  struct OpenCollection {
    uint32_t node = 0;
    size_t first_pending = 0;  // where its children start in pending_
  };

  Status OnEvent(const yaml_event_t& event, bool* done) {
    switch (event.type) {
      case YAML_SCALAR_EVENT: {
        const bool is_null = IsNullScalar(event);
        uint32_t index = 0;
        Status status = AddNode(event, is_null ? YamlKind::kNull : YamlKind::kScalar, event.data.scalar.tag, &index);
        if (!status.ok()) return status;
        YamlTree::Node& node = tree_->nodes_[index];
        node.plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!is_null) {
          status = Store(View(event.data.scalar.value, event.data.scalar.length), &node.text_offset, &node.text_size);
          if (!status.ok()) return status;
        }
        NameAnchor(event.data.scalar.anchor, index);
        Attach(index);
        return Status::Ok();
      }
      case YAML_SEQUENCE_START_EVENT:
        return Open(event, YamlKind::kSequence, event.data.sequence_start.tag, event.data.sequence_start.anchor);
      case YAML_MAPPING_START_EVENT:
        return Open(event, YamlKind::kMap, event.data.mapping_start.tag, event.data.mapping_start.anchor);
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        return Close();
      case YAML_ALIAS_EVENT: {
        const std::string_view name = View(event.data.alias.anchor);
        const auto anchor = anchors_.find(std::string(name));
        if (anchor == anchors_.end()) {
          return Status::InvalidArgument("invalid YAML at " +
                                         At(event.start_mark.line + 1, event.start_mark.column + 1) +
                                         ": unknown anchor \"" + Shown(name) + "\"");
        }
        Status status = Count(event);
        if (!status.ok()) return status;
        Attach(anchor->second);  // the anchored node itself: aliases share, never copy
        return Status::Ok();
      }
      case YAML_DOCUMENT_END_EVENT:
      case YAML_STREAM_END_EVENT:
        *done = true;  // later documents are not read, as with yaml-cpp's Load
        return Status::Ok();
      case YAML_NO_EVENT:
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_START_EVENT:
        return Status::Ok();
    }
    return Status::Ok();
  }

  // Every node and alias reference counts against max_nodes, so the tree's size is bounded
  // whatever the text does.
  Status Count(const yaml_event_t& event) {
    if (++references_ > limits_.max_nodes) {
      return Status::LimitExceeded("line " + std::to_string(event.start_mark.line + 1) + ": more than " +
                                   std::to_string(limits_.max_nodes) + " YAML nodes");
    }
    return Status::Ok();
  }

  Status AddNode(const yaml_event_t& event, YamlKind kind, const yaml_char_t* tag, uint32_t* index) {
    Status status = Count(event);
    if (!status.ok()) return status;
    YamlTree::Node node;
    node.kind = kind;
    node.line = static_cast<uint32_t>(event.start_mark.line + 1);
    node.column = static_cast<uint32_t>(event.start_mark.column + 1);
    if (tag != nullptr) {
      status = Store(View(tag), &node.tag_offset, &node.tag_size);
      if (!status.ok()) return status;
    }
    *index = static_cast<uint32_t>(tree_->nodes_.size());
    tree_->nodes_.push_back(node);
    return Status::Ok();
  }

  Status Store(std::string_view value, uint32_t* offset, uint32_t* size) {
    if (value.size() > std::numeric_limits<uint32_t>::max() - tree_->text_.size()) {
      return Status::LimitExceeded("YAML text too large");
    }
    *offset = static_cast<uint32_t>(tree_->text_.size());
    *size = static_cast<uint32_t>(value.size());
    tree_->text_.append(value);
    return Status::Ok();
  }

  // Registered when the node starts, as yaml-cpp does: an alias inside the collection then refers
  // to the collection itself. A later anchor of the same name wins for later aliases.
  void NameAnchor(const yaml_char_t* anchor, uint32_t index) {
    if (anchor != nullptr) anchors_.insert_or_assign(std::string(View(anchor)), index);
  }

  Status Open(const yaml_event_t& event, YamlKind kind, const yaml_char_t* tag, const yaml_char_t* anchor) {
    if (open_.size() >= limits_.max_depth) {
      return Status::LimitExceeded("line " + std::to_string(event.start_mark.line + 1) + ": nested deeper than " +
                                   std::to_string(limits_.max_depth) + " levels");
    }
    uint32_t index = 0;
    Status status = AddNode(event, kind, tag, &index);
    if (!status.ok()) return status;
    NameAnchor(anchor, index);
    open_.push_back({index, pending_.size()});
    return Status::Ok();
  }

  Status Close() {
    if (open_.empty()) return Status::Internal("YAML: a collection ends that never started");
    const OpenCollection collection = open_.back();
    open_.pop_back();
    YamlTree::Node& node = tree_->nodes_[collection.node];
    node.first_child = static_cast<uint32_t>(tree_->children_.size());
    node.child_count = static_cast<uint32_t>(pending_.size() - collection.first_pending);
    const auto first = pending_.begin() + static_cast<std::ptrdiff_t>(collection.first_pending);
    tree_->children_.insert(tree_->children_.end(), first, pending_.end());
    pending_.resize(collection.first_pending);
    Attach(collection.node);
    return Status::Ok();
  }

  void Attach(uint32_t index) {
    if (!open_.empty()) {
      pending_.push_back(index);
    } else if (!has_root_) {
      tree_->root_ = index;
      has_root_ = true;
    }
  }

  YamlTree* tree_;
  std::string_view text_;
  YamlLimits limits_;
  std::vector<OpenCollection> open_;
  std::vector<uint32_t> pending_;  // finished children of the open collections, innermost last
  std::unordered_map<std::string, uint32_t> anchors_;
  size_t references_ = 0;
  bool has_root_ = false;
};

Result<YamlTree> YamlTree::Parse(std::string_view text, const YamlLimits& limits) {
  return CatchAll("YAML", [&]() -> Result<YamlTree> {
    YamlTree tree;
    YamlTreeBuilder builder(&tree, text, limits);
    Status status = builder.Build();
    if (!status.ok()) return status;
    return tree;
  });
}

}  // namespace gpumart::market
