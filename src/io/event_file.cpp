#include "io/event_file.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "io/crc32c.h"
#include "tensorboard_event.pb.h"

namespace fs = std::filesystem;

namespace difftx {
namespace {

std::string host_name() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  return name.data();
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

}  // namespace

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

EventFileWriter::EventFileWriter(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail<FileError>("{}: cannot create the TensorBoard directory: {}", dir.string(), ec.message());
  // The counter keeps two writers of one process apart within a second.
  static std::atomic<int> counter{0};
  const double now = unix_seconds_now();
  path_ = dir / fmt::format("events.out.tfevents.{}.{}.{}.{}", static_cast<int64_t>(now), host_name(),
                            static_cast<int64_t>(getpid()), counter++);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail<FileError>("{}: cannot create the TensorBoard event file", path_.string());
  tensorboard::Event first;
  first.set_wall_time(now);
  first.set_file_version("brain.Event:2");
  write_record(first.SerializeAsString());
}

void EventFileWriter::scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, float>>& values) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  auto* summary = event.mutable_summary();
  for (const auto& [tag, value] : values) {
    auto* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(value);
  }
  write_record(event.SerializeAsString());
}

void EventFileWriter::session_start(int64_t step, double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  event.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  write_record(event.SerializeAsString());
}

void EventFileWriter::write_record(const std::string& event) {
  std::string record;
  record.reserve(event.size() + 16);
  put_le(record, event.size(), 8);
  put_le(record, masked_crc32c(record.data(), 8), 4);
  record += event;
  put_le(record, masked_crc32c(event.data(), event.size()), 4);
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  if (!out_) fail<FileError>("{}: cannot write the TensorBoard event file", path_.string());
}

}  // namespace difftx
