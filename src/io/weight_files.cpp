#include "io/weight_files.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "common/checked_math.h"

#include "common/error.h"
#include "io/json_file.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

// A shard name from an index must be a plain file name inside the model directory.
void check_shard_name(const std::string& name, const fs::path& index_path, const std::string& tensor) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    fail<FileError>("{}: tensor \"{}\" maps to shard \"{}\", which is not a plain file name in the model directory",
                    index_path.string(), tensor, name);
}

}  // namespace

WeightFiles::WeightFiles(const fs::path& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail<FileError>("{}: not a model directory (does not exist or is not a directory)", dir.string());
  fs::path single = dir / kWeightsFile;
  fs::path index_path = dir / kWeightsIndexFile;
  if (fs::exists(single, ec)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& t : files_.back()->tensors()) entries_[t.name] = Entry{files_.back().get(), &t};
    return;
  }
  if (!fs::exists(index_path, ec))
    fail<FileError>("{}: no weights: expected {} or {}", dir.string(), kWeightsFile, kWeightsIndexFile);

  ordered_json index = json_read_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail<FileError>("{}: expected an object with a \"weight_map\" object", index_path.string());
  std::map<std::string, SafetensorsFile*> shards;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      fail<FileError>("{}: weight_map[\"{}\"] must be a file name string, got {}", index_path.string(), tensor,
                      json_type_name(shard));
    std::string name = shard.get<std::string>();
    check_shard_name(name, index_path, tensor);
    auto it = shards.find(name);
    if (it == shards.end()) {
      fs::path shard_path = dir / name;
      if (!fs::exists(shard_path, ec))
        fail<FileError>("{}: shard {} (named in {} for tensor \"{}\") is missing", shard_path.string(), name,
                        kWeightsIndexFile, tensor);
      files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
      it = shards.emplace(name, files_.back().get()).first;
    }
    const TensorInfo* info = it->second->find(tensor);
    if (info == nullptr)
      fail<FileError>("{}: tensor \"{}\" is mapped to this shard by {} but is not in it", it->second->path().string(),
                      tensor, kWeightsIndexFile);
    entries_[tensor] = Entry{it->second, info};
  }
}

const WeightFiles::Entry* WeightFiles::find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> WeightFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

std::set<DType> WeightFiles::dtypes() const {
  std::set<DType> out;
  for (const auto& [name, entry] : entries_) out.insert(entry.info->dtype);
  return out;
}

uint64_t WeightFiles::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, entry] : entries_) total += entry.info->end - entry.info->begin;
  return total;
}

void WeightFiles::load_f32(std::string_view name, std::span<const int64_t> expected_shape, float* dst) const {
  const Entry* e = find(name);
  if (e == nullptr) fail<FileError>("{}: tensor \"{}\" is missing from the checkpoint", dir_.string(), name);
  const auto& shape = e->info->shape;
  if (!std::equal(shape.begin(), shape.end(), expected_shape.begin(), expected_shape.end()))
    fail<ShapeError>("{}: tensor \"{}\" has shape {} but the config needs [{}]", e->file->path().string(), name,
                     e->info->shape_string(), fmt::join(expected_shape, ", "));
  e->file->load_f32(*e->info, dst);
}

namespace {

// Every value must be finite and representable in the tensor's dtype (F16 overflows at 65504).
void check_representable(const TensorWrite& t) {
  const uint64_t n = checked_numel(t.shape).value();
  const float limit = t.dtype == DType::F16 ? 65504.0f : std::numeric_limits<float>::max();
  for (uint64_t i = 0; i < n; ++i) {
    const float x = t.data[i];
    if (!std::isfinite(x))
      fail<ShapeError>("tensor \"{}\" holds a non-finite value ({}) at index {}; refusing to write it", t.name, x, i);
    if (std::abs(x) > limit)
      fail<ShapeError>("tensor \"{}\" holds {} at index {}, beyond what {} can store (max {}); write another --dtype",
                       t.name, x, i, dtype_name(t.dtype), limit);
  }
}

}  // namespace

std::vector<std::string> weight_files_write(const fs::path& dir, std::span<const TensorWrite> tensors,
                                          const WeightFilesWriteOptions& options) {
  for (const auto& t : tensors) check_representable(t);
  // Group tensors into shards in order: a new shard starts when the next tensor would overflow.
  std::vector<std::vector<TensorWrite>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (const auto& t : tensors) {
    uint64_t n = tensor_write_bytes(t);
    if (shard_bytes > 0 && shard_bytes + n > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += n;
    total += n;
  }
  if (shards.size() == 1) {
    safetensors_write(dir / kWeightsFile, shards[0]);
    return {kWeightsFile};
  }
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // sorted by tensor name, as transformers writes it
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    safetensors_write(dir / name, shards[i]);
    for (const auto& t : shards[i]) weight_map[t.name] = name;
    files.push_back(name);
  }
  ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = ordered_json::object();
  for (const auto& [tensor, file] : weight_map) index["weight_map"][tensor] = file;
  json_write_file(dir / kWeightsIndexFile, index);
  files.push_back(kWeightsIndexFile);
  return files;
}

uint64_t parse_byte_size(std::string_view text) {
  std::string s(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  std::string number = s.substr(0, i), unit = s.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size())
    fail<ConfigError>("size \"{}\" is not a number of bytes (e.g. 5GB, 500MB, 2GiB, 1000000)", text);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "KIB") scale = 1024.0;
  else if (unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else fail<ConfigError>("size \"{}\": unknown unit \"{}\" (expected B, KB, MB, GB, KiB, MiB, GiB)", text, unit);
  double bytes = std::floor(value * scale);
  if (bytes < 1 || bytes > 1e18)
    fail<ConfigError>("size \"{}\" is out of range (from 1 byte to 1e18 bytes)", text);
  return static_cast<uint64_t>(bytes);
}

}  // namespace difftx
