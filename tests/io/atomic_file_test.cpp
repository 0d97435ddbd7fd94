#include "io/atomic_file.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicFile, CommitReplacesAndAbandonKeepsTheOldFile) {
  TempDir dir;
  test::write_text(dir / "f.txt", "old");
  {
    AtomicFile f(dir / "f.txt");
    f.write("new!", 4);
    EXPECT_EQ(test::read_text(dir / "f.txt"), "old");  // not visible before commit
  }  // abandoned
  EXPECT_EQ(test::read_text(dir / "f.txt"), "old");
  EXPECT_EQ(entries(dir.path()), 1u);  // temp file removed
  {
    AtomicFile f(dir / "f.txt");
    f.write("new!", 4);
    f.commit();
  }
  EXPECT_EQ(test::read_text(dir / "f.txt"), "new!");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicFile, UnwritableDirectoryIsAFileError) {
  TempDir dir;
  EXPECT_THROW(AtomicFile(dir / "no" / "such" / "f.txt"), FileError);
}

TEST(StagedDirectory, RefusesNonEmptyUnlessOverwrite) {
  TempDir dir;
  fs::create_directories(dir / "out");
  test::write_text(dir / "out" / "keep.txt", "precious");
  try {
    StagedDirectory s(dir / "out", false);
    FAIL() << "accepted a non-empty directory";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos);
  }
  EXPECT_EQ(test::read_text(dir / "out" / "keep.txt"), "precious");
  EXPECT_EQ(entries(dir.path()), 1u);

  {  // abandoned: the old output stays, staging disappears
    StagedDirectory s(dir / "out", true);
    test::write_text(s.staging() / "new.txt", "new");
  }
  EXPECT_EQ(test::read_text(dir / "out" / "keep.txt"), "precious");
  EXPECT_EQ(entries(dir.path()), 1u);

  {
    StagedDirectory s(dir / "out", true);
    test::write_text(s.staging() / "new.txt", "new");
    s.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "keep.txt"));
  EXPECT_EQ(test::read_text(dir / "out" / "new.txt"), "new");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(StagedDirectory, EmptyOrAbsentTargetAndFileInTheWay) {
  TempDir dir;
  fs::create_directories(dir / "empty");
  {
    StagedDirectory s(dir / "empty", false);
    test::write_text(s.staging() / "a", "1");
    s.commit();
  }
  EXPECT_EQ(test::read_text(dir / "empty" / "a"), "1");
  {
    StagedDirectory s(dir / "nested" / "new", false);
    s.commit();
  }
  EXPECT_TRUE(fs::is_directory(dir / "nested" / "new"));
  test::write_text(dir / "file", "x");
  EXPECT_THROW(StagedDirectory(dir / "file", true), FileError);
}

}  // namespace
}  // namespace difftx
