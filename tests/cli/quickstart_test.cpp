// README's first command, shortened (scripts/quickstart.sh --short): the seed's workflow on the
// embedded model examples/models/wp-llama-12m, checked from the files the script leaves.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "cli/monitor_keys.h"
#include "io/json_file.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

ordered_json read_json(const fs::path& p) { return json_parse(test::read_text(p), p.string()); }

TEST(Quickstart, ShortRunOnTheEmbeddedModel) {
  test::TempDir dir;
  const fs::path out = dir.path() / "qs";
  auto r = test::run_program("bash", {(test::source_dir() / "scripts/quickstart.sh").string(), "--short", "--no-build",
                                      "--out", out.string()},
                             {std::string("DIFFTX=") + DIFFTX_BINARY, std::string("DIFFTX_SHARED=") + DIFFTX_SHARED_DIR});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // 1. --zero-init --no-sublayer-norm keeps the base model's greedy generation; 2. defaults do not.
  EXPECT_NE(test::read_text(out / "convert-zero.log").find("  match (expected"), std::string::npos)
      << test::read_text(out / "convert-zero.log");
  EXPECT_NE(test::read_text(out / "convert-default.log").find("  no match (expected"), std::string::npos)
      << test::read_text(out / "convert-default.log");

  // 3-5. Finite losses; the fine-tune lowers the loss of the same training records it started from.
  const ordered_json before = read_json(out / "eval-before.json"), after = read_json(out / "eval-after.json");
  const ordered_json base = read_json(out / "eval-base.json");
  for (const ordered_json* j : {&before, &after, &base}) {
    EXPECT_TRUE(std::isfinite((*j)["train_loss"].get<double>())) << j->dump();
    EXPECT_TRUE(std::isfinite((*j)["eval_loss"].get<double>())) << j->dump();
  }
  EXPECT_LT(after["train_loss"].get<double>(), before["train_loss"].get<double>());
  EXPECT_GT(before["train_loss"].get<double>(), base["train_loss"].get<double>())
      << "the default conversion changes the function, so it costs loss before fine-tuning";

  // Every monitoring key of spec §6 for the monitored layers (2 of the model's 6: layers 0 and 5).
  std::ifstream in(out / "finetuned" / "metrics.jsonl");
  std::string line;
  int monitored = 0;
  while (std::getline(in, line)) {
    const ordered_json row = json_parse(line, "metrics.jsonl");
    if (!row.contains("layer_0/lambda_full")) continue;
    ++monitored;
    EXPECT_EQ(test::missing_monitor_keys(row, {0, 5}), std::vector<std::string>{}) << row.dump();
  }
  EXPECT_GE(monitored, 2);

  // The fine-tuned model loads, evaluates (above) and generates.
  EXPECT_TRUE(fs::is_regular_file(out / "finetuned" / "model.safetensors"));
  EXPECT_GT(test::read_text(out / "sample-after.txt").size(), std::string("Prince Andrew looked at").size());
  const std::string summary = test::read_text(out / "summary.txt");
  EXPECT_NE(summary.find("lambda_full at step 12"), std::string::npos) << summary;
  // The fine-tune's plot, its path in the summary.
  EXPECT_NE(summary.find("plot: " + (out / "finetuned" / "metrics.png").string()), std::string::npos) << summary;
  EXPECT_GT(test::read_bytes(out / "finetuned" / "metrics.png").size(), 10000u);
  EXPECT_NE(summary.find("layer_5"), std::string::npos) << summary;
}

}  // namespace
}  // namespace difftx
