// Token ids given on the command line or in a file: non-negative integers separated by commas
// and/or whitespace ("1,2,3", "1 2 3"), as `tokenize` prints them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace difftx::cli {

// Appends the ids of `text` to `ids`. Throws ConfigError naming `source` and the bad item.
void parse_ids(std::string_view text, const std::string& source, std::vector<int32_t>& ids);

}  // namespace difftx::cli
