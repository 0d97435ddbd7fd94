// An independent reader of TensorBoard event files for the tests: TFRecord framing and the
// protobuf wire format decoded by hand (no generated code, no shared CRC code), so a mistake in
// io/event_file.cpp or its .proto cannot cancel out. Fails the calling test on a bad CRC.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace difftx::test {

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  int session_status = 0;              // SessionLog.status (1 = START), 0 without a session log
  std::map<std::string, float> scalars;  // Summary values with a simple_value
  int scalars_without_value = 0;         // Summary values whose simple_value is absent
};

// CRC-32C computed bit by bit from the reflected polynomial, then TensorFlow's mask.
uint32_t masked_crc32c_bitwise(const uint8_t* data, size_t size);

// Every record of the file, in order. Sets `error` (and returns what was read before) on a
// truncated record or a CRC mismatch.
std::vector<DecodedEvent> read_event_file(const std::filesystem::path& file, std::string& error);

}  // namespace difftx::test
