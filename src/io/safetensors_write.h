// Writing safetensors files: header padded with spaces to a multiple of 8 bytes (so every tensor
// starts 8-byte aligned, as the reference writer does), "__metadata__" {"format": "pt"} as
// transformers' save_pretrained writes it, tensors laid out in the order given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace difftx {

// A float32 tensor to be stored as `dtype` (F32, BF16 or F16; converted on write).
struct TensorWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats, row-major
  DType dtype = DType::F32;
};

// Bytes the tensor occupies on disk.
uint64_t tensor_write_bytes(const TensorWrite& t);

// Writes the file atomically (temp file, then rename). Throws FileError on an I/O error (the
// previous file at `path`, if any, is left untouched) and std::invalid_argument on a duplicate name.
void safetensors_write(const std::filesystem::path& path, std::span<const TensorWrite> tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace difftx
