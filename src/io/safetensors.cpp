#include "io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "common/bf16.h"
#include "common/checked_math.h"
#include "common/error.h"
#include "io/json_file.h"

namespace difftx {

uint64_t TensorInfo::numel() const { return checked_numel(shape).value_or(0); }

std::string TensorInfo::shape_string() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

namespace {

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

uint64_t json_offset(const ordered_json& v, const std::string& label, const std::string& name) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail<FileError>("{}: tensor \"{}\": data_offsets must be non-negative integers, got {}", label, name, v.dump());
  return v.get<uint64_t>();
}

TensorInfo parse_entry(const std::string& name, const ordered_json& entry, const std::string& label) {
  if (!entry.is_object())
    fail<FileError>("{}: tensor \"{}\": entry must be an object, got {}", label, name, json_type_name(entry));
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail<FileError>("{}: tensor \"{}\": unexpected field \"{}\" (expected dtype, shape, data_offsets)", label, name,
                      key);
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) fail<FileError>("{}: tensor \"{}\": missing field \"{}\"", label, name, key);

  TensorInfo t;
  t.name = name;
  const auto& dtype = entry["dtype"];
  if (!dtype.is_string())
    fail<FileError>("{}: tensor \"{}\": dtype must be a string, got {}", label, name, json_type_name(dtype));
  auto parsed = dtype_from_name(dtype.get<std::string>());
  if (!parsed) fail<FileError>("{}: tensor \"{}\": unknown dtype \"{}\"", label, name, dtype.get<std::string>());
  t.dtype = *parsed;

  const auto& shape = entry["shape"];
  if (!shape.is_array())
    fail<FileError>("{}: tensor \"{}\": shape must be an array, got {}", label, name, json_type_name(shape));
  for (const auto& d : shape) {
    if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0))
      fail<FileError>("{}: tensor \"{}\": shape entries must be non-negative integers, got {}", label, name,
                      shape.dump());
    uint64_t u = d.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      fail<FileError>("{}: tensor \"{}\": dimension {} is too large", label, name, u);
    t.shape.push_back(static_cast<int64_t>(u));
  }

  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail<FileError>("{}: tensor \"{}\": data_offsets must be [begin, end], got {}", label, name, offsets.dump());
  t.begin = json_offset(offsets[0], label, name);
  t.end = json_offset(offsets[1], label, name);
  if (t.end < t.begin)
    fail<FileError>("{}: tensor \"{}\": data_offsets [{}, {}] end before they begin", label, name, t.begin, t.end);

  auto numel = checked_numel(t.shape);
  auto nbytes = numel ? checked_mul(*numel, dtype_size(t.dtype)) : std::nullopt;
  if (!nbytes)
    fail<FileError>("{}: tensor \"{}\": shape {} overflows a 64-bit byte count", label, name, t.shape_string());
  if (*nbytes != t.end - t.begin)
    fail<FileError>("{}: tensor \"{}\": shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", label, name,
                    t.shape_string(), dtype_name(t.dtype), *nbytes, t.begin, t.end, t.end - t.begin);
  return t;
}

}  // namespace

SafetensorsHeader safetensors_parse(const std::byte* file, uint64_t size, const std::string& label) {
  if (size < 8)
    fail<FileError>("{}: truncated: {} bytes, but a safetensors file starts with an 8-byte header length", label,
                    size);
  uint64_t n = read_u64_le(file);
  if (n > kSafetensorsMaxHeader)
    fail<FileError>("{}: header length {} is over the {} byte limit (corrupt or not a safetensors file)", label, n,
                    kSafetensorsMaxHeader);
  if (n > size - 8)
    fail<FileError>("{}: header length {} runs past the end of the file ({} bytes): the file is truncated", label, n,
                    size);

  std::string_view text(reinterpret_cast<const char*>(file + 8), n);
  ordered_json header = json_parse(text, label + " (header)");
  if (!header.is_object()) fail<FileError>("{}: header must be a JSON object, got {}", label, json_type_name(header));

  SafetensorsHeader out;
  out.data_start = 8 + n;
  const uint64_t buffer_size = size - out.data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail<FileError>("{}: __metadata__ must be an object of strings, got {}", label, json_type_name(entry));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail<FileError>("{}: __metadata__[\"{}\"] must be a string, got {}", label, key, json_type_name(value));
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(name, entry, label));
  }

  // The tensors must tile [0, buffer_size) exactly.
  std::vector<const TensorInfo*> order;
  for (const auto& t : out.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : order) {
    if (t->end > buffer_size)
      fail<FileError>("{}: tensor \"{}\": data_offsets [{}, {}] run past the end of the data ({} bytes)", label,
                      t->name, t->begin, t->end, buffer_size);
    if (t->begin < cursor)
      fail<FileError>("{}: tensor \"{}\": data_offsets [{}, {}] overlap tensor \"{}\" ending at {}", label, t->name,
                      t->begin, t->end, previous->name, cursor);
    if (t->begin > cursor)
      fail<FileError>("{}: tensor \"{}\": data_offsets begin at {} but the previous tensor ends at {} (a hole)",
                      label, t->name, t->begin, cursor);
    cursor = t->end;
    previous = t;
  }
  if (cursor != buffer_size)
    fail<FileError>("{}: the tensors cover {} bytes of data but the file holds {} after the header", label, cursor,
                    buffer_size);
  return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : map_(path) {
  header_ = safetensors_parse(map_.data(), map_.size(), path.string());
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::bytes(const TensorInfo& t) const {
  return {map_.data() + header_.data_start + t.begin, static_cast<size_t>(t.end - t.begin)};
}

void SafetensorsFile::load_f32(const TensorInfo& t, float* dst) const {
  if (!dtype_is_loadable(t.dtype))
    fail<FileError>("{}: tensor \"{}\" has dtype {}, which difftx does not load (supported: F32, BF16, F16)",
                    path().string(), t.name, dtype_name(t.dtype));
  dtype_to_f32(t.dtype, bytes(t).data(), dst, t.numel());
  map_.release_pages(header_.data_start + t.begin, t.end - t.begin);
}

void SafetensorsFile::load_bf16(const TensorInfo& t, uint16_t* dst) const {
  if (!dtype_is_loadable(t.dtype))
    fail<FileError>("{}: tensor \"{}\" has dtype {}, which difftx does not load (supported: F32, BF16, F16)",
                    path().string(), t.name, dtype_name(t.dtype));
  const std::byte* src = bytes(t).data();
  const size_t n = t.numel(), width = dtype_size(t.dtype);
  constexpr size_t kChunk = 1 << 14;
  std::vector<float> chunk(kChunk);
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t m = std::min(kChunk, n - i);
    dtype_to_f32(t.dtype, src + i * width, chunk.data(), m);
    for (size_t j = 0; j < m; ++j) dst[i + j] = f32_to_bf16(chunk[j]);
  }
  map_.release_pages(header_.data_start + t.begin, t.end - t.begin);
}

}  // namespace difftx
