#include "io/event_reader.h"

#include <cstring>

#include "test_util.h"

namespace difftx::test {
namespace {

// A cursor over protobuf wire-format bytes.
struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) { ok = false; return 0; }
      const uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return v;
  }
  uint64_t fixed(int bytes) {
    if (end - p < bytes) { ok = false; return 0; }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    p += bytes;
    return v;
  }
  Wire sub() {
    const uint64_t n = varint();
    if (static_cast<uint64_t>(end - p) < n) { ok = false; return {end, end}; }
    Wire w{p, p + n};
    p += n;
    return w;
  }
  void skip(int wire_type) {
    if (wire_type == 0) varint();
    else if (wire_type == 1) fixed(8);
    else if (wire_type == 5) fixed(4);
    else if (wire_type == 2) sub();
    else ok = false;
  }
};

void decode_value(Wire w, DecodedEvent& e) {
  std::string tag;
  bool has = false;
  float value = 0;
  while (w.ok && w.p < w.end) {
    const uint64_t key = w.varint();
    const int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    if (field == 1 && type == 2) {
      Wire s = w.sub();
      tag.assign(reinterpret_cast<const char*>(s.p), static_cast<size_t>(s.end - s.p));
    } else if (field == 2 && type == 5) {
      const uint32_t bits = static_cast<uint32_t>(w.fixed(4));
      std::memcpy(&value, &bits, 4);
      has = true;
    } else {
      w.skip(type);
    }
  }
  if (has) e.scalars[tag] = value;
  else e.scalars_without_value += 1;
}

DecodedEvent decode_event(Wire w) {
  DecodedEvent e;
  while (w.ok && w.p < w.end) {
    const uint64_t key = w.varint();
    const int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    if (field == 1 && type == 1) {
      const uint64_t bits = w.fixed(8);
      std::memcpy(&e.wall_time, &bits, 8);
    } else if (field == 2 && type == 0) {
      e.step = static_cast<int64_t>(w.varint());
    } else if (field == 3 && type == 2) {
      Wire s = w.sub();
      e.file_version.assign(reinterpret_cast<const char*>(s.p), static_cast<size_t>(s.end - s.p));
    } else if (field == 5 && type == 2) {
      Wire summary = w.sub();
      while (summary.ok && summary.p < summary.end) {
        const uint64_t k = summary.varint();
        if ((k >> 3) == 1 && (k & 7) == 2) decode_value(summary.sub(), e);
        else summary.skip(static_cast<int>(k & 7));
      }
    } else if (field == 7 && type == 2) {
      Wire log = w.sub();
      while (log.ok && log.p < log.end) {
        const uint64_t k = log.varint();
        if ((k >> 3) == 1 && (k & 7) == 0) e.session_status = static_cast<int>(log.varint());
        else log.skip(static_cast<int>(k & 7));
      }
    } else {
      w.skip(type);
    }
  }
  return e;
}

uint32_t read_u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }

}  // namespace

uint32_t masked_crc32c_bitwise(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  crc = ~crc;
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::vector<DecodedEvent> read_event_file(const std::filesystem::path& file, std::string& error) {
  const std::vector<uint8_t> bytes = read_bytes(file);
  std::vector<DecodedEvent> events;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 12) { error = "truncated header at byte " + std::to_string(pos); return events; }
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(bytes[pos + i]) << (8 * i);
    if (masked_crc32c_bitwise(&bytes[pos], 8) != read_u32(&bytes[pos + 8])) {
      error = "length CRC mismatch at byte " + std::to_string(pos);
      return events;
    }
    if (bytes.size() - pos - 12 < length + 4) { error = "truncated record at byte " + std::to_string(pos); return events; }
    const uint8_t* data = &bytes[pos + 12];
    if (masked_crc32c_bitwise(data, length) != read_u32(data + length)) {
      error = "data CRC mismatch at byte " + std::to_string(pos);
      return events;
    }
    Wire w{data, data + length};
    events.push_back(decode_event(w));
    pos += 12 + length + 4;
  }
  return events;
}

}  // namespace difftx::test
