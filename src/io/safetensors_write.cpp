#include "io/safetensors_write.h"

#include <set>
#include <stdexcept>

#include "common/checked_math.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

namespace difftx {

uint64_t tensor_write_bytes(const TensorWrite& t) {
  return checked_numel(t.shape).value() * dtype_size(t.dtype);
}

void safetensors_write(const std::filesystem::path& path, std::span<const TensorWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) throw std::invalid_argument("safetensors_write: duplicate tensor " + t.name);
    if (!dtype_is_loadable(t.dtype)) throw std::invalid_argument("safetensors_write: unsupported dtype for " + t.name);
    uint64_t nbytes = tensor_write_bytes(t);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  AtomicFile out(path);
  unsigned char length[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(length, 8);
  out.write(text.data(), text.size());

  // Convert in chunks so that writing never needs a second copy of a large tensor.
  constexpr size_t kChunk = 1 << 20;
  std::vector<std::byte> buffer(kChunk * 4);
  for (const auto& t : tensors) {
    uint64_t numel = checked_numel(t.shape).value();
    for (uint64_t i = 0; i < numel; i += kChunk) {
      size_t count = static_cast<size_t>(std::min<uint64_t>(kChunk, numel - i));
      dtype_from_f32(t.dtype, t.data + i, buffer.data(), count);
      out.write(buffer.data(), count * dtype_size(t.dtype));
    }
  }
  out.commit();
}

}  // namespace difftx
