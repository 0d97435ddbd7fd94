#include "config/local_dir.h"

#include <regex>

#include "common/error.h"

namespace fs = std::filesystem;

namespace difftx {

fs::path resolve_local_dir(const std::string& key, const std::string& value, const fs::path& yaml_path) {
  std::error_code ec;
  fs::path p(value);
  if (fs::is_directory(p, ec)) return p;
  static const std::regex hub_id(R"(^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$)");
  const fs::path cwd = fs::current_path(ec);
  if (!fs::exists(p, ec) && std::regex_match(value, hub_id))
    fail<ConfigError>(
        "{}: {} \"{}\" is not a local directory ({} does not exist; relative paths are taken from the current "
        "directory {}), and if it is a Hugging Face Hub id, difftx reads only local directories and never "
        "downloads: download it first (e.g. `huggingface-cli download {} --local-dir models/{}`) and set {} to "
        "that directory, or fix the local path.",
        yaml_path.string(), key, value, (cwd / p).lexically_normal().string(), cwd.string(), value,
        p.filename().string(), key);
  if (fs::exists(p, ec)) fail<ConfigError>("{}: {} \"{}\" is not a directory", yaml_path.string(), key, value);
  if (p.is_absolute()) fail<ConfigError>("{}: {} \"{}\" does not exist", yaml_path.string(), key, value);
  fail<ConfigError>("{}: {} \"{}\" does not exist (relative paths are taken from the current directory {})",
                    yaml_path.string(), key, value, cwd.string());
}

}  // namespace difftx
