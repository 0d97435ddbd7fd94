#include "cli/id_list.h"

#include <charconv>

#include "common/error.h"

namespace difftx::cli {

namespace {

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

void parse_ids(std::string_view text, const std::string& source, std::vector<int32_t>& ids) {
  size_t i = 0, commas = 0;  // commas since the last item
  while (i < text.size()) {
    if (is_separator(text[i])) {
      commas += text[i] == ',';
      if (commas > 1 && !ids.empty())
        fail<ConfigError>("{}: an empty item between two commas after id {} (give one id between each pair)", source,
                          ids.back());
      ++i;
      continue;
    }
    commas = 0;
    size_t end = i;
    while (end < text.size() && !is_separator(text[end])) ++end;
    std::string_view item = text.substr(i, end - i);
    int32_t id = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (ec != std::errc() || ptr != item.data() + item.size() || id < 0)
      fail<ConfigError>("{}: \"{}\" is not a token id (expected non-negative integers separated by commas or spaces)",
                        source, item);
    ids.push_back(id);
    i = end;
  }
}

}  // namespace difftx::cli
