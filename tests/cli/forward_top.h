// The top-k ids per position that `difftx forward ... --json` prints (CLI tests comparing models).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "test_util.h"

namespace difftx::test {

inline std::vector<std::vector<int64_t>> forward_top_ids(const std::vector<std::string>& args) {
  auto r = run_difftx(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::vector<int64_t>> out;
  for (const auto& row : json_parse(r.out, "forward output")) {
    out.emplace_back();
    for (const auto& t : row["top"]) out.back().push_back(t["id"].get<int64_t>());
  }
  return out;
}

}  // namespace difftx::test
