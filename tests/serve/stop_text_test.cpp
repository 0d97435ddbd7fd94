// StopText: OpenAI's stop strings over streamed pieces.
#include "serve/stop_text.h"

#include <gtest/gtest.h>

namespace difftx {
namespace {

// Feeds the pieces; returns everything shown (finish() included unless stopped).
std::string shown(StopText& s, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += s.add(p);
  return out + s.finish();
}

TEST(StopText, NoStopStringsPassEverything) {
  StopText s({});
  EXPECT_EQ(s.add("abc"), "abc");
  EXPECT_EQ(s.add(""), "");
  EXPECT_FALSE(s.stopped());
}

TEST(StopText, StopsInsideAPiece) {
  StopText s({"END"});
  EXPECT_EQ(s.add("one END two"), "one ");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.add("more"), "");
  EXPECT_EQ(s.finish(), "");
}

TEST(StopText, StopSpanningPiecesIsHeldBackThenDropped) {
  StopText s({"\n\n"});
  EXPECT_EQ(s.add("Hello\n"), "Hello");  // "\n" may begin the stop string
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.add("\nworld"), "");
  EXPECT_TRUE(s.stopped());
}

TEST(StopText, HeldTextIsReleasedWhenItIsNotTheStop) {
  StopText s({"<|im_end|>"});
  EXPECT_EQ(s.add("a <|im"), "a ");
  EXPECT_EQ(s.add("_start|>b"), "<|im_start|>b");
  EXPECT_EQ(s.add("<"), "");
  EXPECT_EQ(s.finish(), "<");  // the end of generation shows what was held
}

TEST(StopText, EarliestOfSeveralStopsWins) {
  StopText s({"cd", "b"});
  EXPECT_EQ(shown(s, {"abcd"}), "a");
  StopText t({"xyz", "yz!"});
  EXPECT_EQ(shown(t, {"__x", "y", "z!"}), "__");
}

TEST(StopText, StreamedPiecesEqualTheWholeText) {
  const std::string text = "It was the best of times, it was the worst of times.";
  for (const char* stop : {"worst", "times.", "zzz", "t"}) {
    StopText whole({stop});
    const std::string expected = shown(whole, {text});
    StopText pieces({stop});
    std::vector<std::string> one_by_one;
    for (char c : text) one_by_one.emplace_back(1, c);
    EXPECT_EQ(shown(pieces, one_by_one), expected) << stop;
    EXPECT_EQ(expected, text.substr(0, text.find(stop))) << stop;
  }
}

}  // namespace
}  // namespace difftx
