// `difftx plot` and `difftx attention-map` through the CLI on a trained run and real models: PNGs
// of the printed size that are not blank, JSON matrices whose rows sum as attention rows must, and
// the bad inputs (an empty run directory, a layer or head out of range, a prompt over the
// context, a --focus not in the prompt) refused with exit code 2 and a message naming them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "cli/train_fixture.h"
#include "plot/png_check.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

class PicturesCliTest : public test::TrainCliFixture {};

TEST_F(PicturesCliTest, PlotDrawsARunAndOverlaysTwo) {
  ASSERT_EQ(run_difftx({"train", config("pa", "").string()}).exit_code, 0);
  ASSERT_EQ(run_difftx({"train", config("pb", "learning_rate: 0.001").string()}).exit_code, 0);
  const fs::path a = dir_->path() / "pa", b = dir_->path() / "pb";
  auto r = run_difftx({"plot", a.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("8 records, steps 1 to 8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote " + (a / "metrics.png").string() + " (1200x800)"), std::string::npos) << r.out;
  auto s = test::png_stats(a / "metrics.png", palette_color(0));
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.width, 1200);
  EXPECT_EQ(s.height, 800);
  EXPECT_GT(s.non_white, 1200 * 800 / 50);
  EXPECT_GT(s.near, 500);

  const fs::path both = dir_->path() / "both.png";
  r = run_difftx({"plot", a.string(), (b / "metrics.jsonl").string(), "-o", both.string(), "--width", "800",
                  "--height", "500", "--title", "two learning rates"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  s = test::png_stats(both, palette_color(2));  // the second run's loss is the panel's third series
  EXPECT_EQ(s.width, 800);
  EXPECT_EQ(s.height, 500);
  EXPECT_GT(s.near, 100);
}

TEST_F(PicturesCliTest, PlotRefusesWhatIsNotARun) {
  fs::create_directories(dir_->path() / "emptyrun");
  auto r = run_difftx({"plot", (dir_->path() / "emptyrun").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("emptyrun: no metrics.jsonl here"), std::string::npos) << r.err;
  test::write_text(dir_->path() / "m1.jsonl", "{\"step\":1,\"loss\":2}\n");
  r = run_difftx({"plot", (dir_->path() / "m1.jsonl").string(), (dir_->path() / "m1.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("-o FILE.png"), std::string::npos) << r.err;
  r = run_difftx({"plot", (dir_->path() / "m1.jsonl").string(), "-o", (dir_->path() / "p.png").string(), "--width",
                  "20"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("at least 320x240"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "p.png"));
  // -o naming the input itself: refused (not a .png name), the file kept; a .png name that holds
  // something else: refused too, the file kept.
  r = run_difftx({"plot", (dir_->path() / "m1.jsonl").string(), "-o", (dir_->path() / "m1.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("m1.jsonl: difftx writes PNG pictures only; name the file .png"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_text(dir_->path() / "m1.jsonl"), "{\"step\":1,\"loss\":2}\n");
  test::write_text(dir_->path() / "notes.png", "my notes\n");
  r = run_difftx({"plot", (dir_->path() / "m1.jsonl").string(), "-o", (dir_->path() / "notes.png").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("exists and is not a PNG"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_text(dir_->path() / "notes.png"), "my notes\n");
  // Another picture format's name is refused before any work (difftx would write a PNG under it).
  for (const char* name : {"curves.jpg", "curves.SVG", "curves.pdf"}) {
    r = run_difftx({"plot", (dir_->path() / "m1.jsonl").string(), "-o", (dir_->path() / name).string()});
    EXPECT_EQ(r.exit_code, 2) << name;
    EXPECT_NE(r.err.find("difftx writes PNG pictures only"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_->path() / name));
  }
}

// Every row of each [T, T] matrix sums to `expected(i)`.
void expect_row_sums(const ordered_json& m, int64_t T, const std::function<double(int64_t)>& expected) {
  ASSERT_EQ(static_cast<int64_t>(m.size()), T);
  for (int64_t i = 0; i < T; ++i) {
    ASSERT_EQ(static_cast<int64_t>(m[i].size()), T);
    double sum = 0;
    for (const auto& v : m[i]) sum += v.get<double>();
    EXPECT_NEAR(sum, expected(i), 1e-5) << "row " << i;
  }
}

TEST_F(PicturesCliTest, AttentionMapOfADifferentialAndABaseModel) {
  const std::string prompt = "The secret word is river. The cat sat on the mat. The secret word is";
  const fs::path png = dir_->path() / "diff-map.png";
  auto r = run_difftx({"attention-map", (dir_->path() / "diff").string(), "--prompt", prompt, "--layer", "1",
                       "--head", "0,1", "-o", png.string(), "--json", "--focus", "river"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ordered_json j = json_parse(r.out, "attention-map --json");
  EXPECT_EQ(j["layer"], 1);
  EXPECT_TRUE(j["differential"].get<bool>());
  const int64_t T = static_cast<int64_t>(j["tokens"].size());
  EXPECT_EQ(static_cast<int64_t>(j["ids"].size()), T);
  EXPECT_GT(T, 10);
  ASSERT_EQ(j["heads"].size(), 2u);
  for (const auto& h : j["heads"]) {
    expect_row_sums(h["positive"], T, [](int64_t) { return 1.0; });
    expect_row_sums(h["negative"], T, [](int64_t) { return 1.0; });
    expect_row_sums(h["difference"], T, [&](int64_t i) { return 1.0 - h["lambda"][i].get<double>(); });
    EXPECT_EQ(h["positive"][0][1].get<double>(), 0.0) << "causal";
  }
  // --focus: "river" is one or more tokens; the reported mass is the last row's sum over them.
  const auto& f = j["focus"];
  ASSERT_FALSE(f["tokens"].empty());
  double mass = 0;
  for (const auto& t : f["tokens"]) mass += j["heads"][0]["positive"][T - 1][t.get<int64_t>()].get<double>();
  EXPECT_NEAR(f["heads"][0]["positive"].get<double>(), mass, 1e-6);
  std::string pieces;
  for (const auto& t : f["tokens"]) pieces += j["tokens"][t.get<int64_t>()].get<std::string>();
  EXPECT_NE(pieces.find("river"), std::string::npos) << pieces;
  // The labels: each token's text with visible spaces ("▁river" in the vocabulary, "␣river" drawn).
  ASSERT_EQ(j["labels"].size(), j["tokens"].size());
  std::string labelled;
  for (const auto& t : f["tokens"]) labelled += j["labels"][t.get<int64_t>()].get<std::string>();
  EXPECT_NE(labelled.find("␣river"), std::string::npos) << labelled;
  EXPECT_EQ(labelled.find("▁"), std::string::npos) << labelled;
  const auto s = test::png_stats(png);
  ASSERT_TRUE(s.ok);
  EXPECT_GT(s.width, 3 * T * 4) << "three panels of T cells";
  EXPECT_GT(s.non_white, s.width * s.height / 20);

  // A base model: one softmax panel per head, rows sum to 1; the printed size is the PNG's.
  const fs::path base_png = dir_->path() / "base-map.png";
  r = run_difftx({"attention-map", (dir_->path() / "base").string(), "--prompt", prompt, "-o", base_png.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto bs = test::png_stats(base_png);
  EXPECT_NE(r.out.find(fmt::format("wrote {} ({}x{})", base_png.string(), bs.width, bs.height)), std::string::npos)
      << r.out;
  r = run_difftx({"attention-map", (dir_->path() / "base").string(), "--prompt", prompt, "--json", "--head", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ordered_json jb = json_parse(r.out, "attention-map --json");
  EXPECT_FALSE(jb["differential"].get<bool>());
  EXPECT_FALSE(jb.contains("png")) << "--json alone writes no picture";
  expect_row_sums(jb["heads"][0]["softmax"], static_cast<int64_t>(jb["tokens"].size()), [](int64_t) { return 1.0; });
}

// Token labels take each character from an installed font that has it: CJK tokens of the Mistral
// vocabulary draw without a warning (scripts/deps.sh installs a CJK font); a private-use character
// no font has (U+F0B7, a PDF bullet the vocabulary holds as a token) draws as a box, and the
// command says which characters and what to install.
TEST_F(PicturesCliTest, AttentionMapLabelsNameTheCharactersNoFontHas) {
  const fs::path png = dir_->path() / "cjk-map.png";
  auto r = run_difftx({"attention-map", (dir_->path() / "diff").string(), "--prompt", "東京は日本の首都です", "-o",
                       png.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("in no installed font"), std::string::npos) << r.err;
  EXPECT_TRUE(test::png_stats(png).ok);
  r = run_difftx({"attention-map", (dir_->path() / "diff").string(), "--prompt", "東京 \uf0b7 river", "-o",
                  png.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(png.string() + ": 1 character of the token labels (U+F0B7) is in no installed font and is "
                                      "drawn as a box holding its code; install a font that covers it"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("; --json gives the exact token strings"), std::string::npos) << r.err;
  EXPECT_TRUE(test::png_stats(png).ok);
  r = run_difftx({"attention-map", (dir_->path() / "diff").string(), "--prompt", "東京 \uf0b7 river", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("in no installed font"), std::string::npos) << "no picture, no warning:\n" << r.err;
  bool bullet = false;  // --json has the exact token
  const ordered_json j = json_parse(r.out, "attention-map --json");
  for (const auto& t : j["tokens"])
    bullet = bullet || t.get<std::string>().find("\uf0b7") != std::string::npos;
  EXPECT_TRUE(bullet) << r.out;
}

TEST_F(PicturesCliTest, AttentionMapRefusesBadInput) {
  const std::string model = (dir_->path() / "diff").string();
  auto expect_refused = [&](std::vector<std::string> args, const std::string& needle) {
    args.insert(args.begin(), {"attention-map", model});
    args.insert(args.end(), {"-o", (dir_->path() / "bad.png").string()});
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_->path() / "bad.png"));
    fs::remove(dir_->path() / "bad.png");
  };
  expect_refused({"--prompt", "hello there", "--layer", "9"}, "layer 9 does not exist; the model has");
  expect_refused({"--prompt", "hello there", "--head", "99"}, "head 99 does not exist");
  expect_refused({"--prompt", "hello there friends of mine", "--max-tokens", "3"}, "more than the 3 allowed");
  std::string long_prompt;
  for (int i = 0; i < 600; ++i) long_prompt += "word ";
  expect_refused({"--prompt", long_prompt}, "more than the 512 allowed");
  expect_refused({"--prompt", "hello there", "--focus", "absent"}, "--focus \"absent\" is not in the prompt");
  expect_refused({"--prompt", "", "--no-special-tokens"}, "--prompt gives no tokens");
  expect_refused({"--prompt", "hello there", "--layer", "-2"}, "--layer -2: give a layer from 0, or -1 for the last");
  expect_refused({"--prompt", "hello there", "--head", ""}, "--head \"\": expected a head number");
  expect_refused({"--prompt", "hello there", "--head", "1,1"}, "--head 1 is given twice");
  expect_refused({"--prompt", "hello there", "--head", "x"}, "--head \"x\"");
  expect_refused({"--prompt", "hello there", "--focus", ""}, "--focus: empty text");
  // -o onto the model's weights: refused, the weights kept.
  const fs::path weights = dir_->path() / "diff" / "model.safetensors";
  const auto before = test::read_bytes(weights);
  auto r = run_difftx({"attention-map", model, "--prompt", "hello", "-o", weights.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("difftx writes PNG pictures only"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(weights), before);
  r = run_difftx({"attention-map", model, "--prompt", "hello", "-o", (dir_->path() / "map.jpeg").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("map.jpeg: difftx writes PNG pictures only; name the file .png"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "map.jpeg"));
}

}  // namespace
}  // namespace difftx
