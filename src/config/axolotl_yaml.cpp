#include "config/axolotl_yaml.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <optional>
#include <vector>

#include <yaml-cpp/eventhandler.h>

#include "common/error.h"
#include "common/utf8_valid.h"

namespace difftx {

namespace {

constexpr uintmax_t kMaxYamlBytes = 16u << 20;

const char* node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

// yaml-cpp keeps the first of repeated keys while axolotl's PyYAML keeps the last: refuse them,
// and keys that are not scalars (complex keys), which no axolotl key is.
// `budget` bounds the walk (aliases can make a small file a huge tree) and `depth` the nesting (an
// alias inside the node it names, `x: &x [*x]`, makes a cycle; so does a very deep file).
void check_unique_keys(const YAML::Node& node, const std::string& label, int64_t& budget, int depth = 0) {
  if (--budget < 0) fail<ConfigError>("{}: the document is too large (nested aliases?)", label);
  if (depth > 200)
    fail<ConfigError>("{}:{}: nested more than 200 levels deep (an alias used inside the node it names?)", label,
                      node.Mark().line + 1);
  if (node.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar())  // "? [a, b]: x" or "? : x": axolotl keys are names
        fail<ConfigError>("{}:{}: a mapping key is {}; keys must be plain names", label, kv.first.Mark().line + 1,
                          node_kind(kv.first));
      const std::string key = kv.first.Scalar();
      if (!keys.insert(key).second)
        fail<ConfigError>("{}:{}: key \"{}\" appears twice in one mapping", label, kv.first.Mark().line + 1, key);
      check_unique_keys(kv.second, label, budget, depth + 1);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) check_unique_keys(item, label, budget, depth + 1);
  }
}

// Where a second document starts, if `text` has one. The parser's events are ignored, and it is
// asked for two documents at most: yaml-cpp 0.7 reports an endless run of empty documents for some
// malformed input (`,#$axo\`# %`), where YAML::LoadAll never returns (fuzz/regressions/yaml).
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::optional<YAML::Mark> second_document(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts handler;
  try {
    for (int i = 0; i < 2 && parser.HandleNextDocument(handler); ++i) {
    }
  } catch (const YAML::Exception& e) {  // the first document parsed (YAML::Load): the error is after it
    return handler.starts.size() > 1 ? handler.starts[1] : e.mark;
  }
  if (handler.starts.size() > 1) return handler.starts[1];
  return std::nullopt;
}

}  // namespace

AxolotlYaml axolotl_yaml_load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail<FileError>("{}: config file not found", path.string());
  if (std::filesystem::file_size(path, ec) > kMaxYamlBytes)
    fail<FileError>("{}: larger than {} bytes; not an axolotl config", path.string(), kMaxYamlBytes);
  std::ifstream in(path);
  if (!in) fail<FileError>("{}: cannot read", path.string());
  std::stringstream text;
  text << in.rdbuf();
  const std::string content = text.str();
  // PyYAML reads configs as UTF-8 (or UTF-16/32 with a byte-order mark, which no axolotl config
  // uses); yaml-cpp would take other bytes as they come and fail later with a misleading message.
  if (const size_t bad = utf8_find_invalid(content); bad != kValidUtf8) {
    const size_t line = 1 + static_cast<size_t>(std::count(content.begin(), content.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
    fail<ConfigError>("{}:{}: byte {} (0x{:02X}) is not valid UTF-8; an axolotl config must be UTF-8 text", path.string(),
                      line, bad, static_cast<unsigned char>(content[bad]));
  }
  AxolotlYaml y;
  y.path = path;
  try {
    y.root = YAML::Load(content);
  } catch (const YAML::Exception& e) {
    fail<ConfigError>("{}:{}:{}: not valid YAML: {}", path.string(), e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  // PyYAML's safe_load, which axolotl uses, refuses a stream of several documents.
  if (const std::optional<YAML::Mark> second = second_document(content))
    fail<ConfigError>("{}:{}: a second YAML document starts here (a \"---\" line); an axolotl config is one document",
                      path.string(), second->line + 1);
  if (!y.root.IsMap())
    fail<ConfigError>("{}: the top level must be a mapping of keys, got {}", path.string(), node_kind(y.root));
  int64_t budget = 1'000'000;
  check_unique_keys(y.root, path.string(), budget);
  return y;
}

std::optional<std::string> AxolotlYaml::string(const std::string& key) const {
  YAML::Node n = root[key];
  if (!n || n.IsNull()) return std::nullopt;
  if (!n.IsScalar()) fail<ConfigError>("{}: key \"{}\" must be a string, got {}", path.string(), key, node_kind(n));
  return n.as<std::string>();
}

namespace {

// A scalar key decoded as T; `expected` names T in the error.
template <class T>
std::optional<T> scalar_as(const AxolotlYaml& y, const std::string& key, const char* expected) {
  YAML::Node n = y.root[key];
  if (!n || n.IsNull()) return std::nullopt;
  T value{};
  if (!n.IsScalar() || !YAML::convert<T>::decode(n, value))
    fail<ConfigError>("{}: key \"{}\" must be {}, got {}", y.path.string(), key, expected,
                      n.IsScalar() ? "\"" + n.Scalar() + "\"" : node_kind(n));
  return value;
}

}  // namespace

std::optional<bool> AxolotlYaml::boolean(const std::string& key) const { return scalar_as<bool>(*this, key, "true or false"); }
std::optional<int64_t> AxolotlYaml::integer(const std::string& key) const {
  return scalar_as<int64_t>(*this, key, "an integer");
}
std::optional<double> AxolotlYaml::number(const std::string& key) const {
  const std::optional<double> x = scalar_as<double>(*this, key, "a number");
  if (x && !std::isfinite(*x))  // YAML's .nan and .inf: no axolotl key takes them
    fail<ConfigError>("{}: key \"{}\" must be a finite number, got {}", path.string(), key, root[key].Scalar());
  return x;
}

std::string axolotl_yaml_dump(const YAML::Node& root) {
  YAML::Emitter out;
  out.SetIndent(2);
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace difftx
