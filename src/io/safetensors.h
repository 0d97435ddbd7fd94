// Reading safetensors files (https://github.com/huggingface/safetensors, format described in its README):
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data buffer]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the data buffer) plus an optional "__metadata__" string map.
//
// The parser is strict, because these files come from the internet: N is capped at
// kSafetensorsMaxHeader and must not run past the end of the file; the header must be a JSON
// object; dtypes must be known names; shape x element size must equal end - begin (overflow-checked);
// the tensors must tile the data buffer exactly (no holes, no overlap, the last one ending at the end
// of the file); names must be unique. Every violation throws FileError naming the file and tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.h"
#include "io/mapped_file.h"

namespace difftx {

inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;  // bytes, as the reference implementation

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer
  uint64_t end = 0;
  uint64_t numel() const;
  std::string shape_string() const;  // "[4, 16]"
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data buffer (8 + N)
};

// Validates a whole file image of `size` bytes. `label` (normally the path) prefixes every error.
SafetensorsHeader safetensors_parse(const std::byte* file, uint64_t size, const std::string& label);

// A memory-mapped, validated safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent

  // The tensor's raw little-endian bytes inside the map.
  std::span<const std::byte> bytes(const TensorInfo& t) const;

  // Converts the tensor to float32 into dst (numel() floats). Throws FileError naming the
  // tensor and its dtype when the dtype is not F32, BF16 or F16.
  void load_f32(const TensorInfo& t, float* dst) const;
  // The same into bfloat16 (round to nearest even; a BF16 tensor is copied exactly), through a
  // small float32 buffer: no float32 copy of the whole tensor.
  void load_bf16(const TensorInfo& t, uint16_t* dst) const;

 private:
  MappedFile map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace difftx
