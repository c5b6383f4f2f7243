#include "market/yaml_tree.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/alloc_failure.h"

namespace gpumart::market {
namespace {

constexpr YamlLimits kTestLimits{.max_nodes = 10'000, .max_depth = 64};

// Parses `text`; on failure the test fails and the tree is empty.
YamlTree Load(const std::string& text, const YamlLimits& limits = kTestLimits) {
  Result<YamlTree> tree = YamlTree::Parse(text, limits);
  EXPECT_TRUE(tree.ok()) << tree.status().ToString() << "\n" << text;
  if (!tree.ok()) return std::move(YamlTree::Parse("", limits)).value();
  return std::move(tree).value();
}

Status LoadError(const std::string& text, const YamlLimits& limits = kTestLimits) {
  Result<YamlTree> tree = YamlTree::Parse(text, limits);
  EXPECT_FALSE(tree.ok()) << text;
  return tree.ok() ? Status::Ok() : tree.status();
}

TEST(YamlTree, ScalarStylesAndTags) {
  const YamlTree tree = Load(
      "plain: some text\n"
      "single: 'it''s'\n"
      "double: \"tab\\tA\\x41\\u00e9\"\n"
      "number: 2.0\n"
      "tagged: !!str 12\n"
      "custom: !thing x\n");
  const YamlNode root = tree.Root();
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.Find("plain").Scalar(), "some text");
  EXPECT_TRUE(root.Find("plain").IsPlain());
  EXPECT_EQ(root.Find("plain").Tag(), "?");
  EXPECT_EQ(root.Find("single").Scalar(), "it's");
  EXPECT_FALSE(root.Find("single").IsPlain());
  EXPECT_EQ(root.Find("single").Tag(), "!");
  EXPECT_EQ(root.Find("double").Scalar(), "tab\tAA\xc3\xa9");
  EXPECT_EQ(root.Find("double").Tag(), "!");
  EXPECT_EQ(root.Find("number").Scalar(), "2.0");  // kept as written: no number conversion
  EXPECT_EQ(root.Find("tagged").Scalar(), "12");
  EXPECT_EQ(root.Find("tagged").Tag(), "tag:yaml.org,2002:str");
  EXPECT_EQ(root.Find("custom").Tag(), "!thing");
  EXPECT_EQ(root.Tag(), "?");
}

TEST(YamlTree, NullForms) {
  const YamlTree tree = Load(
      "a: ~\nb: null\nc: Null\nd: NULL\ne:\n"
      "f: 'null'\ng: \"~\"\nh: nULL\ni: !!str null\nj: ''\nk: !!str\n");
  const YamlNode root = tree.Root();
  for (const char* key : {"a", "b", "c", "d", "e"}) {
    EXPECT_TRUE(root.Find(key).IsNull()) << key;
    EXPECT_FALSE(root.Find(key).IsScalar()) << key;
    EXPECT_TRUE(root.Find(key).IsDefined()) << key;
    EXPECT_EQ(root.Find(key).Scalar(), "") << key;
  }
  // Quoted, tagged or other spellings are strings.
  EXPECT_EQ(root.Find("f").Scalar(), "null");
  EXPECT_EQ(root.Find("g").Scalar(), "~");
  EXPECT_EQ(root.Find("h").Scalar(), "nULL");
  EXPECT_EQ(root.Find("i").Scalar(), "null");
  EXPECT_TRUE(root.Find("j").IsScalar());
  EXPECT_EQ(root.Find("j").Scalar(), "");
  EXPECT_TRUE(root.Find("k").IsScalar());
  // A missing key is undefined, not null.
  EXPECT_FALSE(root.Find("missing").IsDefined());
  EXPECT_FALSE(root.Find("missing").IsNull());
  EXPECT_EQ(root.Find("missing").size(), 0u);
}

TEST(YamlTree, EmptyInputsAreNull) {
  for (const char* text : {"", "# only a comment\n", "---\n", "--- ~\n"}) {
    const YamlTree tree = Load(text);
    EXPECT_TRUE(tree.Root().IsNull()) << text;
  }
}

TEST(YamlTree, BlockScalars) {
  const YamlTree tree = Load(
      "literal: |\n  line1\n  line2\n\n"
      "folded: >\n  folded\n  text\n\n  para\n"
      "strip: |-\n  strip\n\n"
      "keep: |+\n  keep\n\n"
      "folded_strip: >-\n  x\n  y\n"
      "indented: |2\n   three\n");
  const YamlNode root = tree.Root();
  EXPECT_EQ(root.Find("literal").Scalar(), "line1\nline2\n");
  EXPECT_EQ(root.Find("folded").Scalar(), "folded text\npara\n");
  EXPECT_EQ(root.Find("strip").Scalar(), "strip");
  EXPECT_EQ(root.Find("keep").Scalar(), "keep\n\n");
  EXPECT_EQ(root.Find("folded_strip").Scalar(), "x y");
  EXPECT_EQ(root.Find("indented").Scalar(), " three\n");
  EXPECT_FALSE(root.Find("literal").IsPlain());
  EXPECT_EQ(root.Find("literal").Tag(), "!");
}

TEST(YamlTree, FlowCollectionsCommentsAndSpaces) {
  const YamlTree tree = Load(
      "# leading comment\n"
      "list:   [1, 'two', {x: 1, y: [a, b]}, ]   # trailing comment\n"
      "map: {p, q: , r:   s}\n"
      "block:\n"
      "  - a\n"
      "  -   - b\n"
      "      - c\n");
  const YamlNode root = tree.Root();
  const YamlNode list = root.Find("list");
  ASSERT_TRUE(list.IsSequence());
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list.Item(1).Scalar(), "two");
  EXPECT_TRUE(list.Item(2).IsMap());
  EXPECT_EQ(list.Item(2).Find("y").Item(1).Scalar(), "b");
  EXPECT_FALSE(list.Item(3).IsDefined());  // out of range
  const YamlNode map = root.Find("map");
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map.Entry(0).key.Scalar(), "p");
  EXPECT_TRUE(map.Entry(0).value.IsNull());
  EXPECT_TRUE(map.Find("q").IsNull());
  EXPECT_EQ(map.Find("r").Scalar(), "s");
  const YamlNode block = root.Find("block");
  ASSERT_EQ(block.size(), 2u);
  EXPECT_EQ(block.Item(1).size(), 2u);
  size_t items = 0;
  for (const YamlNode item : block.Items()) {
    EXPECT_TRUE(item.IsDefined());
    ++items;
  }
  EXPECT_EQ(items, 2u);
  EXPECT_EQ(block.Entries().size(), 0u);  // a sequence has no entries
}

TEST(YamlTree, MappingKeepsDocumentOrderAndDuplicates) {
  const YamlTree tree = Load("zeta: 1\nalpha: 2\nzeta: 3\n\"quoted key\": 4\n");
  const YamlNode root = tree.Root();
  ASSERT_EQ(root.size(), 4u);
  std::string keys;
  for (const YamlMapEntry& entry : root.Entries()) keys += std::string(entry.key.Scalar()) + ",";
  EXPECT_EQ(keys, "zeta,alpha,zeta,quoted key,");
  EXPECT_EQ(root.Find("zeta").Scalar(), "1");  // the first one
  EXPECT_EQ(root.Find("quoted key").Scalar(), "4");
}

TEST(YamlTree, PositionsAreOneBased) {
  const YamlTree tree = Load("a: 1\nlist:\n  - x\n  - {k: v}\n");
  const YamlNode root = tree.Root();
  EXPECT_EQ(root.Line(), 1u);
  EXPECT_EQ(root.Column(), 1u);
  EXPECT_EQ(root.Find("a").Line(), 1u);
  EXPECT_EQ(root.Find("a").Column(), 4u);
  const YamlNode list = root.Find("list");
  EXPECT_EQ(list.Line(), 3u);
  EXPECT_EQ(list.Column(), 3u);
  EXPECT_EQ(list.Item(1).Line(), 4u);
  EXPECT_EQ(list.Item(1).Column(), 5u);
  EXPECT_EQ(list.Item(1).Find("k").Column(), 9u);
  EXPECT_EQ(YamlNode().Line(), 0u);
}

TEST(YamlTree, OnlyTheFirstDocumentIsRead) {
  EXPECT_EQ(Load("a: 1\n---\nb: 2\n").Root().size(), 1u);
  // What follows the first document is not even parsed, as with yaml-cpp's Load.
  EXPECT_EQ(Load("a: 1\n...\nbroken: [\n").Root().Find("a").Scalar(), "1");
  EXPECT_EQ(Load("--- |\n  text\n").Root().Scalar(), "text\n");
}

TEST(YamlTree, AliasesShareTheAnchoredNode) {
  const size_t nodes_without_aliases = Load("a: &x {k: v, l: [1, 2, 3]}\n").NodeCount();
  const YamlTree tree = Load("a: &x {k: v, l: [1, 2, 3]}\nb: *x\nc: [*x, *x]\nd: &s text\ne: *s\n");
  const YamlNode root = tree.Root();
  EXPECT_TRUE(root.Find("b").SameAs(root.Find("a")));
  EXPECT_TRUE(root.Find("c").Item(1).SameAs(root.Find("a")));
  EXPECT_EQ(root.Find("b").Find("l").Item(2).Scalar(), "3");
  EXPECT_EQ(root.Find("e").Scalar(), "text");
  EXPECT_EQ(root.Find("b").Line(), 1u);  // the anchored node's position
  // Aliases add no nodes: the new ones are the keys b, c, d, e, c's list and d's value.
  EXPECT_EQ(tree.NodeCount(), nodes_without_aliases + 6);
}

TEST(YamlTree, AnAliasInsideItsAnchorIsACycle) {
  // As with yaml-cpp, an anchor names its collection from where it starts.
  const YamlTree tree = Load("a: &x {self: *x, k: v}\n");
  const YamlNode a = tree.Root().Find("a");
  EXPECT_TRUE(a.Find("self").SameAs(a));
  EXPECT_EQ(a.Find("self").Find("self").Find("k").Scalar(), "v");
}

TEST(YamlTree, LaterAnchorOfTheSameNameWins) {
  const YamlTree tree = Load("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
  EXPECT_EQ(tree.Root().Find("b").Scalar(), "1");
  EXPECT_EQ(tree.Root().Find("d").Scalar(), "2");
}

TEST(YamlTree, UnknownAliasIsAnErrorWithPosition) {
  const Status status = LoadError("a: 1\nb: *nowhere\n");
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.message(), "invalid YAML at line 2, column 4: unknown anchor \"nowhere\"");
}

TEST(YamlTree, MergeKeysStayPlainKeys) {
  // The tree does not merge; the SDL parser does, telling "<<" from the quoted '<<' by its tag.
  const YamlTree tree = Load("base: &b {x: 1}\nm: {<<: *b, '<<': q}\n");
  const YamlNode m = tree.Root().Find("m");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.Entry(0).key.Scalar(), "<<");
  EXPECT_EQ(m.Entry(0).key.Tag(), "?");
  EXPECT_TRUE(m.Entry(0).value.IsMap());
  EXPECT_EQ(m.Entry(1).key.Tag(), "!");
}

template <typename F>
double Seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(YamlTree, AliasBombStaysSmall) {
  // Billion laughs: ten levels of ten aliases each would be 10^10 nodes if aliases were copied.
  std::string text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level <= 10; ++level) {
    const std::string previous = "*l" + std::to_string(level - 1);
    text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += (i == 0 ? "" : ", ") + previous;
    text += "]\n";
  }
  Result<YamlTree> tree = Status::Internal("not run");
  EXPECT_LT(Seconds([&] { tree = YamlTree::Parse(text, kTestLimits); }), 1.0);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_LT(tree->NodeCount(), 100u);
  const YamlNode top = tree->Root().Find("l10");
  EXPECT_EQ(top.size(), 10u);
  YamlNode leaf = top;
  for (int level = 10; level >= 0; --level) leaf = leaf.Item(9);  // l9 ... l0, then one of l0's items
  EXPECT_EQ(leaf.Scalar(), "lol");
}

TEST(YamlTree, NodeLimitCountsNodesAndAliases) {
  const YamlLimits small{.max_nodes = 10, .max_depth = 64};
  EXPECT_TRUE(YamlTree::Parse("[1, 2, 3, 4, 5, 6, 7, 8, 9]", small).ok());  // the list and 9 items
  const Status nodes = LoadError("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", small);
  EXPECT_EQ(nodes.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(nodes.message(), "line 1: more than 10 YAML nodes");
  // Aliases are cheap, but not free: each reference counts.
  const Status aliases = LoadError("- &a x\n- *a\n- *a\n- *a\n- *a\n- *a\n- *a\n- *a\n- *a\n- *a\n", small);
  EXPECT_EQ(aliases.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(aliases.message(), "line 10: more than 10 YAML nodes");
}

TEST(YamlTree, DepthLimit) {
  const YamlLimits shallow{.max_nodes = 10'000, .max_depth = 3};
  EXPECT_TRUE(YamlTree::Parse("a: {b: [c]}\n", shallow).ok());
  const Status status = LoadError("a: {b: [{c: d}]}\n", shallow);
  EXPECT_EQ(status.code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(status.message(), "line 1: nested deeper than 3 levels");
  // Lone CR line breaks nest blocks too; the tree's own limit catches what a line-based scan would not.
  std::string text;
  for (int i = 0; i < 200; ++i) text += std::string(static_cast<size_t>(i), ' ') + "k:\r";
  EXPECT_EQ(LoadError(text).code(), Status::Code::kLimitExceeded);
}

TEST(YamlTree, SyntaxErrorsHaveLineAndColumn) {
  EXPECT_EQ(LoadError("--\nversion: '2.0'\n").message(),
            "invalid YAML at line 2, column 8: mapping values are not allowed in this context");
  const Status unclosed = LoadError("version: \"2.0\"\nservices:\n  web: [1, 2\n");
  EXPECT_EQ(unclosed.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(unclosed.message(), "invalid YAML at line 4, column 1: did not find expected ',' or ']'");
  EXPECT_EQ(LoadError("a: 'unterminated\n").message(),
            "invalid YAML at line 2, column 1: found unexpected end of stream");
  EXPECT_EQ(LoadError("a:\n\t- b\n").message(),
            "invalid YAML at line 2, column 1: found character that cannot start any token");
}

TEST(YamlTree, BadBytesAreReaderErrorsWithPosition) {
  EXPECT_EQ(LoadError(std::string("a: 1\nb: x\xff y\n")).message(),
            "invalid YAML at line 2, column 5: invalid leading UTF-8 octet");
  EXPECT_EQ(LoadError(std::string("a: \"x\0y\"\n", 9)).message(),
            "invalid YAML at line 1, column 6: control characters are not allowed");
}

TEST(YamlTree, HandlesAreCheapValues) {
  // Handles are plain values: copying them, or the ranges, copies no tree data.
  const YamlTree tree = Load("a: [1, 2]\n");
  const YamlNode list = tree.Root().Find("a");
  const YamlNode copy = list;
  EXPECT_TRUE(copy.SameAs(list));
  const auto items = list.Items();
  std::string joined;
  for (const YamlNode item : items) joined += std::string(item.Scalar());
  EXPECT_EQ(joined, "12");
}

// Exceptions stop at the boundary: whichever allocation fails while a tree is built, Parse
// returns a Status (kLimitExceeded), through the same CatchAll as every YAML entry point.
TEST(YamlTreeTest, AnAllocationFailureAnywhereIsAStatus) {
  if (!GPUMART_ALLOC_FAILURE_INJECTION) GTEST_SKIP() << "allocation failures cannot be injected under a sanitizer";
  const std::string text = "a: &x {b: [1, 2, {c: d}], e: \"f\"}\ng: *x\nh: [i, j, k]\n";
  const auto parse = [&] { return YamlTree::Parse(text, {.max_nodes = 1000, .max_depth = 10}); };
  EXPECT_GT(alloc_failure::EveryAllocationFailureIsAStatus("YamlTree::Parse", parse), 5);
}

}  // namespace
}  // namespace gpumart::market
