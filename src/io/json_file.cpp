#include "io/json_file.h"

#include <set>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace difftx {

ordered_json json_parse(std::string_view text, const std::string& label) {
  // Keys seen per open object, to reject duplicates (nlohmann would keep the last silently).
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, ordered_json::parse_event_t event, ordered_json& parsed) -> bool {
    if (depth > kJsonMaxDepth) fail<FileError>("{}: JSON nests deeper than {} levels", label, kJsonMaxDepth);
    switch (event) {
      case ordered_json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case ordered_json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case ordered_json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.empty() && !open_objects.back().insert(key).second)
          fail<FileError>("{}: duplicate key \"{}\" in a JSON object", label, key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return ordered_json::parse(text.begin(), text.end(), callback);
  } catch (const ordered_json::exception& e) {
    fail<FileError>("{}: not valid JSON: {}", label, e.what());
  }
}

ordered_json json_read_file(const std::filesystem::path& path) {
  MappedFile file(path);
  if (file.size() > kJsonMaxFileBytes)
    fail<FileError>("{}: {} bytes is larger than the {} byte limit for a JSON file", path.string(), file.size(),
                    kJsonMaxFileBytes);
  std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  return json_parse(text, path.string());
}

void json_write_file(const std::filesystem::path& path, const ordered_json& value) {
  std::string text = value.dump(2) + "\n";
  AtomicFile out(path);
  out.write(text.data(), text.size());
  out.commit();
}

std::string json_type_name(const ordered_json& value) {
  switch (value.type()) {
    case ordered_json::value_t::null: return "null";
    case ordered_json::value_t::boolean: return "a boolean";
    case ordered_json::value_t::number_integer:
    case ordered_json::value_t::number_unsigned: return "an integer";
    case ordered_json::value_t::number_float: return "a number";
    case ordered_json::value_t::string: return "a string";
    case ordered_json::value_t::array: return "an array";
    case ordered_json::value_t::object: return "an object";
    default: return "an unsupported JSON value";
  }
}

}  // namespace difftx
