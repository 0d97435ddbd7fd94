// `difftx tokenize` and `difftx detokenize` end to end, on the real binary and fixture files.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

TEST(TokenizerCli, MistralIdsRoundTripThroughFiles) {
  const std::string dir = tokenizer_fixture("mistral").string();
  RunResult r = run_difftx({"tokenize", "--tokenizer", dir, "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "22557,1526\n");
  r = run_difftx({"tokenize", "--tokenizer", dir, "--add-special-tokens", "Hello world"});
  EXPECT_EQ(r.out, "1,22557,1526\n");
  r = run_difftx({"detokenize", "--tokenizer", dir, "1,22557", "1526"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s> Hello world");  // exactly the text, no newline added
  r = run_difftx({"detokenize", "--tokenizer", dir, "--skip-special-tokens", "1 22557 1526"});
  EXPECT_EQ(r.out, "Hello world");

  TempDir tmp;
  const std::string text = "Tabs\tand\nnewlines, \u00E9t\u00E9 \U0001F999 end.\n";
  write_text(tmp / "in.txt", text);
  r = run_difftx({"tokenize", "--tokenizer", dir, "--file", (tmp / "in.txt").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  write_text(tmp / "ids.txt", r.out);
  r = run_difftx({"detokenize", "--tokenizer", dir, "--file", (tmp / "ids.txt").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, text);
}

TEST(TokenizerCli, DroppedCharactersAreReported) {
  // No unk token, no byte fallback: the ids leave out what the vocabulary lacks (as the tokenizers
  // library does) and tokenize says how much, and which characters.
  TempDir tmp;
  write_text(tmp / "tokenizer.json", tiny_tokenizer_json({"a", "b"}, {}).dump());
  RunResult r = run_difftx({"tokenize", "--tokenizer", tmp.path().string(), "axyb\u00E9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0,1\n");
  EXPECT_NE(r.err.find("the tokenizer dropped 4 bytes (3 characters, e.g. \"x\", \"y\", \"\u00E9\")"), std::string::npos)
      << r.err;
  r = run_difftx({"tokenize", "--tokenizer", tmp.path().string(), "abba"});
  EXPECT_EQ(r.err, "");
}

TEST(TokenizerCli, Llama3VerboseAndJson) {
  const std::string dir = tokenizer_fixture("llama3").string();
  RunResult r = run_difftx({"tokenize", "--tokenizer", dir, "--verbose", "Hello, world!<|eot_id|>"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "     0     9906  \"Hello\"\n"
            "     1       11  \",\"\n"
            "     2     1917  \"\u0120world\"\n"
            "     3        0  \"!\"\n"
            "     4   128009  \"<|eot_id|>\"  (special)\n"
            "5 tokens from 23 bytes\n");
}

TEST(TokenizerCli, ErrorsExitWithTwo) {
  const std::string dir = tokenizer_fixture("mistral").string();
  TempDir tmp;
  write_text(tmp / "bad.txt", "ok\xFF");
  RunResult r = run_difftx({"tokenize", "--tokenizer", dir, "--file", (tmp / "bad.txt").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: " + (tmp / "bad.txt").string() + ": text is not valid UTF-8 at byte 2 (0xFF)\n");
  r = run_difftx({"detokenize", "--tokenizer", dir, "1,x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "error: ids: \"x\" is not a token id (expected non-negative integers separated by commas or spaces)\n");
  r = run_difftx({"detokenize", "--tokenizer", dir, "1,,2"});  // an item left out, not skipped
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: ids: an empty item between two commas after id 1 (give one id between each pair)\n");
  r = run_difftx({"detokenize", "--tokenizer", dir, "1, 2,\n3 4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_difftx({"detokenize", "--tokenizer", dir, "32000"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: id 32000 is not in the vocabulary of " + dir + "/tokenizer.json (ids 0..31999)\n");
  r = run_difftx({"tokenize", "--tokenizer", tmp.path().string(), "x"});
  EXPECT_EQ(r.exit_code, 2);
  r = run_difftx({"tokenize", "--tokenizer", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: tokenize: give the text as an argument or --file FILE\n");
}

}  // namespace
}  // namespace difftx::test
