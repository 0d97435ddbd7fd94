#include "tokenizer/post_processors.h"

#include <map>
#include <string>

#include "common/error.h"

namespace difftx::tok {

namespace {

constexpr std::string_view kSupported = "TemplateProcessing, ByteLevel, Sequence";

// Reads one template (a list of {"SpecialToken": {id, type_id}} / {"Sequence": {id, type_id}}).
// For the single template fills prefix/suffix; for the pair template only checks it.
void read_template(const JsonRef& list, const std::map<std::string, std::vector<int32_t>>& specials, bool single,
                   SingleTemplate& out) {
  int a_count = 0, b_count = 0;
  for (size_t i = 0; i < list.array_size(); ++i) {
    JsonRef item = list[i];
    item.expect_object();
    if (item.value().size() != 1) item.fail("must have one key, \"SpecialToken\" or \"Sequence\"");
    if (auto special = item.find("SpecialToken")) {
      special->expect_keys({"id", "type_id"});
      std::string name = special->at("id").as_string();
      special->at("type_id").as_int();
      auto it = specials.find(name);
      if (it == specials.end()) special->at("id").fail(fmt::format("\"{}\" is not in special_tokens", name));
      if (single) {
        auto& dst = a_count == 0 ? out.prefix : out.suffix;
        dst.insert(dst.end(), it->second.begin(), it->second.end());
      }
    } else if (auto seq = item.find("Sequence")) {
      seq->expect_keys({"id", "type_id"});
      std::string id = seq->at("id").as_string();
      seq->at("type_id").as_int();
      if (id == "A") ++a_count;
      else if (id == "B") ++b_count;
      else seq->at("id").fail(fmt::format("must be \"A\" or \"B\", got \"{}\"", id));
    } else {
      item.fail("must have the key \"SpecialToken\" or \"Sequence\"");
    }
  }
  if (single && (a_count != 1 || b_count != 0)) list.fail("must hold $A exactly once and no $B");
  if (!single && (a_count != 1 || b_count != 1)) list.fail("must hold $A and $B exactly once each");
}

void read_into(const JsonRef& value, SingleTemplate& t) {
  std::string type = value.at("type").as_string();
  if (type == "ByteLevel") {
    value.expect_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    value.get_bool("add_prefix_space", true);
    value.get_bool("trim_offsets", true);
    value.get_bool("use_regex", true);
    return;
  }
  if (type == "Sequence") {
    value.expect_keys({"type", "processors"});
    JsonRef list = value.at("processors");
    for (size_t i = 0; i < list.array_size(); ++i) {
      if (list[i].is_null()) list[i].fail("must be a post-processor object, got null");
      read_into(list[i], t);
    }
    return;
  }
  if (type == "TemplateProcessing") {
    value.expect_keys({"type", "single", "pair", "special_tokens"});
    std::map<std::string, std::vector<int32_t>> specials;
    JsonRef map = value.at("special_tokens");
    map.expect_object();
    for (auto it = map.value().begin(); it != map.value().end(); ++it) {
      JsonRef entry = map.at(it.key());
      entry.expect_keys({"id", "ids", "tokens"});
      if (entry.at("id").as_string() != it.key()) entry.at("id").fail(fmt::format("must equal its key \"{}\"", it.key()));
      JsonRef ids = entry.at("ids"), tokens = entry.at("tokens");
      if (ids.array_size() != tokens.array_size()) entry.fail("must have as many ids as tokens");
      std::vector<int32_t> v;
      for (size_t i = 0; i < ids.array_size(); ++i) {
        int64_t id = ids[i].as_int();
        if (id < 0 || id > INT32_MAX) ids[i].fail("must be an id from 0 to 2147483647");
        v.push_back(static_cast<int32_t>(id));
        tokens[i].as_string();
      }
      specials.emplace(it.key(), std::move(v));
    }
    SingleTemplate inner;
    read_template(value.at("single"), specials, true, inner);
    SingleTemplate unused;
    read_template(value.at("pair"), specials, false, unused);
    // A later processor wraps what the earlier ones produced.
    t.prefix.insert(t.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
    t.suffix.insert(t.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    return;
  }
  value.fail_type(type, kSupported);
}

}  // namespace

SingleTemplate post_processor_from_json(const JsonRef& value) {
  SingleTemplate t;
  if (!value.is_null()) read_into(value, t);
  return t;
}

}  // namespace difftx::tok
