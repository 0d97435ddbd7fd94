// The weights of a Hugging Face model directory: either one `model.safetensors`, or
// `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard file}}) with its
// shards, as transformers' save_pretrained writes them. A single model.safetensors wins when both
// exist (transformers' order).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"

namespace difftx {

inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";

class WeightFiles {
 public:
  // Opens and validates every file. Throws FileError naming the directory or file when neither
  // weights file exists, the index is malformed, a shard it names is absent (or escapes the
  // directory), or a tensor the index maps to a shard is not in that shard.
  explicit WeightFiles(const std::filesystem::path& dir);

  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  const Entry* find(std::string_view name) const;  // nullptr when absent
  std::vector<std::string> names() const;         // sorted
  size_t shard_count() const { return files_.size(); }
  const std::filesystem::path& dir() const { return dir_; }
  std::set<DType> dtypes() const;
  uint64_t total_bytes() const;

  // Loads tensor `name` as float32 into dst after checking its shape. Throws FileError when the
  // tensor is missing and ShapeError (naming tensor, file, found and expected shape) on a mismatch.
  void load_f32(std::string_view name, std::span<const int64_t> expected_shape, float* dst) const;

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

struct WeightFilesWriteOptions {
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default max_shard_size "5GB"
};

// Writes model.safetensors, or shards "model-00001-of-0000N.safetensors" plus the index when the
// tensors exceed max_shard_bytes (a tensor larger than the limit gets a shard of its own, as in
// transformers). `dir` must exist (normally a StagedDirectory's staging()). Returns the file names.
// Throws ShapeError naming the tensor when a value is NaN/inf or does not fit the dtype (F16).
std::vector<std::string> weight_files_write(const std::filesystem::path& dir, std::span<const TensorWrite> tensors,
                                          const WeightFilesWriteOptions& options = {});

// "5GB" -> 5e9, "500MB", "2GiB" -> 2^31, "123" -> 123 bytes. Throws ConfigError otherwise.
uint64_t parse_byte_size(std::string_view text);

}  // namespace difftx
