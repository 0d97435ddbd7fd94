// TensorBoard event files: what io/event_file.cpp writes, read back by an independent decoder
// (tests/io/event_reader.cpp), and CRC-32C against published check values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "io/crc32c.h"
#include "io/event_file.h"
#include "io/event_reader.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

TEST(Crc32cTest, MatchesPublishedCheckValues) {
  // RFC 3720 B.4 and the CRC catalogue: CRC-32C("123456789") = 0xE3069283; 32 zero bytes = 0x8A9136AA.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  // Continuing a CRC over a split equals the CRC of the whole.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
  const auto* p = reinterpret_cast<const uint8_t*>("123456789");
  EXPECT_EQ(masked_crc32c("123456789", 9), test::masked_crc32c_bitwise(p, 9));
  EXPECT_EQ(masked_crc32c("", 0), test::masked_crc32c_bitwise(p, 0));
}

TEST(EventFileTest, ScalarsDecodeWithTheirStepsAndValues) {
  test::TempDir dir;
  fs::path file;
  {
    EventFileWriter w(dir / "runs");
    file = w.path();
    w.scalars(1, 1000.5, {{"loss", 10.25f}, {"learning_rate", 0.0f}, {"layer_0/lambda_full", -0.125f}});
    w.scalars(2, 1001.5, {{"loss", 9.5f}, {"eval_loss", 9.75f}});
    w.session_start(2, 1002.0);
    w.scalars(123456789012, 1003.0, {{"grad_norm", 1e-30f}});
  }
  EXPECT_EQ(file.parent_path(), dir / "runs");
  EXPECT_EQ(file.filename().string().rfind("events.out.tfevents.", 0), 0u) << file;
  std::string error;
  const auto events = test::read_event_file(file, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GT(events[0].wall_time, 1.6e9);  // now, in seconds since the epoch
  EXPECT_EQ(events[1].step, 1);
  EXPECT_DOUBLE_EQ(events[1].wall_time, 1000.5);
  ASSERT_EQ(events[1].scalars.size(), 3u);
  EXPECT_EQ(events[1].scalars.at("loss"), 10.25f);
  EXPECT_EQ(events[1].scalars.at("learning_rate"), 0.0f) << "a zero is written, not left out";
  EXPECT_EQ(events[1].scalars.at("layer_0/lambda_full"), -0.125f);
  EXPECT_EQ(events[1].scalars_without_value, 0);
  EXPECT_EQ(events[2].scalars.at("eval_loss"), 9.75f);
  EXPECT_EQ(events[3].session_status, 1);
  EXPECT_EQ(events[3].step, 2);
  EXPECT_TRUE(events[3].scalars.empty());
  EXPECT_EQ(events[4].step, 123456789012);
  EXPECT_EQ(events[4].scalars.at("grad_norm"), 1e-30f);
}

TEST(EventFileTest, ACorruptedByteIsCaughtByTheCrc) {
  test::TempDir dir;
  fs::path file;
  {
    EventFileWriter w(dir.path());
    file = w.path();
    w.scalars(1, 1.0, {{"loss", 2.0f}});
  }
  auto bytes = test::read_bytes(file);
  bytes[bytes.size() - 6] ^= 0x01;  // inside the float of the last record
  test::write_bytes(file, bytes);
  std::string error;
  const auto events = test::read_event_file(file, error);
  EXPECT_EQ(events.size(), 1u);
  EXPECT_NE(error.find("data CRC mismatch"), std::string::npos) << error;
}

TEST(EventFileTest, TwoWritersInOneDirectoryGetTwoFiles) {
  test::TempDir dir;
  EventFileWriter a(dir.path()), b(dir.path());
  EXPECT_NE(a.path(), b.path());
}

TEST(EventFileTest, AnUnwritableDirectoryIsAClearError) {
  test::TempDir dir;
  test::write_text(dir / "file", "x");
  try {
    EventFileWriter w(dir / "file" / "runs");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the TensorBoard directory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("file/runs"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace difftx
