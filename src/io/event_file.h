// TensorBoard event files: a TFRecord file of Event protocol buffers holding scalar summaries.
//
// Framing of each record (TensorFlow's tsl/lib/io/record_writer.cc): uint64 length (little
// endian), uint32 masked CRC-32C of those 8 bytes, the serialised Event, uint32 masked CRC-32C of
// it. The first record is an Event with file_version "brain.Event:2". The file is named
// events.out.tfevents.<unix seconds>.<host>.<pid>.<n> as PyTorch's SummaryWriter names them;
// TensorBoard reads every such file in a directory, in name order, as one run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace difftx {

class EventFileWriter {
 public:
  // Creates `dir` (and parents) and a new event file in it. Throws FileError when it cannot.
  explicit EventFileWriter(const std::filesystem::path& dir);

  // One Event with one scalar per (tag, value), at `step`; `wall_time` in seconds since the epoch.
  // Written and flushed at once, so TensorBoard shows a run as it goes. Throws FileError.
  void scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, float>>& values);

  // A SessionLog START at `step`: TensorBoard discards the events of earlier files of the run with
  // a step >= `step` (what a resumed run logs again replaces what the interrupted one logged).
  void session_start(int64_t step, double wall_time);

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& event);

  std::filesystem::path path_;
  std::ofstream out_;
};

// Seconds since the Unix epoch, as an Event's wall_time.
double unix_seconds_now();

}  // namespace difftx
