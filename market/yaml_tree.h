// A small read-only YAML tree, loaded with libyaml's event parser.
//
// The SDL parser reads untrusted YAML and only walks it, so this keeps exactly what it needs and
// nothing it could be made to blow up: every node lives in one flat array, an alias is a second
// reference to the anchored node (never a copy, so an alias bomb costs one slot per alias written),
// the number of nodes and the nesting depth are bounded, and loading never recurses or throws.
//
// Semantics follow yaml-cpp's YAML::Load, which the SDL parser used before:
//  - only the first document of a stream is read (later ones are not even parsed);
//  - a plain scalar without an explicit tag that is empty, "~", "null", "Null" or "NULL" is a null
//    node; quoted, block (| >) or tagged scalars are always scalars;
//  - Tag() is the explicit tag when one is written ("!!str" reads as "tag:yaml.org,2002:str"),
//    else "!" for a quoted or block scalar and "?" for everything else;
//  - mapping entries keep document order and duplicates (callers decide what a duplicate means);
//  - an anchor names its node from where it is written, so an alias inside an anchored collection
//    may refer to that collection itself: a tree can have cycles, and walkers must bound themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "market/status.h"

namespace gpumart::market {

struct YamlLimits {
  size_t max_nodes = 0;  // scalars, nulls, collections and alias references, together
  size_t max_depth = 0;  // nested collections
};

enum class YamlKind : uint8_t { kUndefined, kNull, kScalar, kSequence, kMap };

class YamlTree;
struct YamlMapEntry;

// A handle to one node of a YamlTree: cheap to copy, valid while its tree is alive and not moved.
// The default handle, and what Find() returns for a missing key, is undefined.
class YamlNode {
 public:
  YamlNode() = default;

  YamlKind Kind() const;
  bool IsDefined() const { return Kind() != YamlKind::kUndefined; }
  bool IsNull() const { return Kind() == YamlKind::kNull; }
  bool IsScalar() const { return Kind() == YamlKind::kScalar; }
  bool IsSequence() const { return Kind() == YamlKind::kSequence; }
  bool IsMap() const { return Kind() == YamlKind::kMap; }

  std::string_view Scalar() const;  // the value of a scalar; empty for any other node
  std::string_view Tag() const;     // see the file comment
  bool IsPlain() const;             // a scalar written without quotes or a block indicator

  // Where the node starts in the text, 1-based; 0 for an undefined node. An alias reads as its
  // anchored node, so it reports the anchor's position.
  size_t Line() const;
  size_t Column() const;

  size_t size() const;  // items of a sequence, entries of a mapping, else 0
  YamlNode Item(size_t index) const;           // index < size() of a sequence
  YamlMapEntry Entry(size_t index) const;      // index < size() of a mapping
  // The value of the first entry whose key is a scalar equal to `key`; undefined when none.
  YamlNode Find(std::string_view key) const;

  // True when both handles name the same node, e.g. an alias and its anchor.
  bool SameAs(const YamlNode& other) const { return tree_ == other.tree_ && index_ == other.index_; }

  template <typename Value, Value (YamlNode::*kAt)(size_t) const>
  class Range;
  using ItemRange = Range<YamlNode, &YamlNode::Item>;
  using EntryRange = Range<YamlMapEntry, &YamlNode::Entry>;
  ItemRange Items() const;      // the items of a sequence; empty for any other node
  EntryRange Entries() const;   // the entries of a mapping; empty for any other node

 private:
  friend class YamlTree;
  YamlNode(const YamlTree* tree, uint32_t index) : tree_(tree), index_(index) {}
  const YamlTree* tree_ = nullptr;
  uint32_t index_ = 0;
};

struct YamlMapEntry {
  YamlNode key;
  YamlNode value;
};

template <typename Value, Value (YamlNode::*kAt)(size_t) const>
class YamlNode::Range {
 public:
  class iterator {
   public:
    iterator(YamlNode parent, size_t index) : parent_(parent), index_(index) {}
    Value operator*() const { return (parent_.*kAt)(index_); }
    iterator& operator++() {
      ++index_;
      return *this;
    }
    bool operator==(const iterator& other) const { return index_ == other.index_; }

   private:
    YamlNode parent_;
    size_t index_;
  };
  Range(YamlNode parent, size_t size) : parent_(parent), size_(size) {}
  iterator begin() const { return iterator(parent_, 0); }
  iterator end() const { return iterator(parent_, size_); }
  size_t size() const { return size_; }

 private:
  YamlNode parent_;
  size_t size_;
};

class YamlTree {
 public:
  // Loads the first document of `text`. A syntax error is InvalidArgument "invalid YAML at line L,
  // column C: <libyaml's problem>"; an alias to an unknown anchor is one too; going over `limits`
  // is LimitExceeded. Never throws (running out of memory is LimitExceeded too).
  static Result<YamlTree> Parse(std::string_view text, const YamlLimits& limits);

  // The document's root: a null node for an empty stream or document. The handle points into this
  // object, so take it after the tree has reached its final place.
  YamlNode Root() const { return YamlNode(this, root_); }
  size_t NodeCount() const { return nodes_.size(); }

 private:
  friend class YamlNode;
  friend class YamlTreeBuilder;

  struct Node {
    YamlKind kind = YamlKind::kNull;
    bool plain = true;
    uint32_t line = 0;    // 1-based
    uint32_t column = 0;  // 1-based
    uint32_t text_offset = 0;  // scalar value in text_
    uint32_t text_size = 0;
    uint32_t tag_offset = 0;  // explicit tag in text_; none when tag_size is 0
    uint32_t tag_size = 0;
    uint32_t first_child = 0;  // in children_; a mapping's are key, value, key, value...
    uint32_t child_count = 0;
  };

  std::vector<Node> nodes_;
  std::vector<uint32_t> children_;  // node indexes; each collection's are contiguous
  std::string text_;                // every scalar value and explicit tag, back to back
  uint32_t root_ = 0;
};

}  // namespace gpumart::market
