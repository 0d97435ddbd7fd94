#include "io/json_file.h"

#include <unordered_set>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace difftx {

namespace {

template <class Json>
Json parse_checked(std::string_view text, const std::string& label) {
  // Keys seen per open object, to reject duplicates (nlohmann would keep the last silently).
  std::vector<std::unordered_set<std::string>> open_objects;
  auto callback = [&](int depth, typename Json::parse_event_t event, Json& parsed) -> bool {
    if (depth > kJsonMaxDepth) fail<FileError>("{}: JSON nests deeper than {} levels", label, kJsonMaxDepth);
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.template get_ref<const std::string&>();
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
    return Json::parse(text.begin(), text.end(), callback);
  } catch (const typename Json::exception& e) {
    fail<FileError>("{}: not valid JSON: {}", label, e.what());
  }
}

template <class Json>
Json read_checked(const std::filesystem::path& path) {
  MappedFile file(path);
  if (file.size() > kJsonMaxFileBytes)
    fail<FileError>("{}: {} bytes is larger than the {} byte limit for a JSON file", path.string(), file.size(),
                    kJsonMaxFileBytes);
  std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  return parse_checked<Json>(text, path.string());
}

template <class Json>
std::string type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "an unsupported JSON value";
  }
}

}  // namespace

ordered_json json_parse(std::string_view text, const std::string& label) {
  return parse_checked<ordered_json>(text, label);
}
ordered_json json_read_file(const std::filesystem::path& path) { return read_checked<ordered_json>(path); }
unordered_json json_parse_unordered(std::string_view text, const std::string& label) {
  return parse_checked<unordered_json>(text, label);
}
unordered_json json_read_file_unordered(const std::filesystem::path& path) { return read_checked<unordered_json>(path); }
std::string json_type_name(const ordered_json& value) { return type_name(value); }
std::string json_type_name(const unordered_json& value) { return type_name(value); }

void json_write_file(const std::filesystem::path& path, const ordered_json& value) {
  std::string text = value.dump(2) + "\n";
  AtomicFile out(path);
  out.write(text.data(), text.size());
  out.commit();
}


}  // namespace difftx
