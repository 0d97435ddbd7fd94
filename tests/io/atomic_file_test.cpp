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

TEST(StagedDirectory, ADirectoryAppearingMeanwhileIsNotReplacedWithoutOverwrite) {
  TempDir dir;
  StagedDirectory s(dir / "out", false);
  test::write_text(s.staging() / "new.txt", "new");
  fs::create_directories(dir / "out");
  test::write_text(dir / "out" / "mine.txt", "precious");  // another process wrote here meanwhile
  EXPECT_THROW(s.commit(), FileError);
  EXPECT_EQ(test::read_text(dir / "out" / "mine.txt"), "precious");
}

TEST(StagedDirectory, RefusesToReplaceADirectoryHoldingAnInput) {
  TempDir dir;
  fs::create_directories(dir / "parent" / "base");
  test::write_text(dir / "parent" / "base" / "config.json", "{}");
  try {
    StagedDirectory s(dir / "parent", true, {dir / "parent" / "base"});
    FAIL() << "would delete its own input";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("reads"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(dir / "parent" / "base" / "config.json"));
  EXPECT_NO_THROW(StagedDirectory(dir / "parent", true, {dir / "elsewhere"}));
  EXPECT_THROW(StagedDirectory("", false), FileError);
}

TEST(StagedDirectory, LeftoversOfKilledProcessesAreRemoved) {
  TempDir dir;
  // pid 999999999 is above any Linux pid_max: that process is gone.
  fs::create_directories(dir / "out.staging-999999999-42");
  test::write_text(dir / "out.staging-999999999-42" / "model.safetensors", "half");
  test::write_text(dir / "out.tmp-999999999-7", "half");
  fs::create_directories(dir / "out.staging-1-5");  // pid 1 runs: kept
  fs::create_directories(dir / "outer.staging-999999999-1");  // another output's name: kept
  { StagedDirectory s(dir / "out", false); }
  EXPECT_FALSE(fs::exists(dir / "out.staging-999999999-42"));
  EXPECT_FALSE(fs::exists(dir / "out.tmp-999999999-7"));
  EXPECT_TRUE(fs::exists(dir / "out.staging-1-5"));
  EXPECT_TRUE(fs::exists(dir / "outer.staging-999999999-1"));
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
  // A file where a directory above the output must be (merge-lora's output_dir/merged with
  // output_dir a file): the file is named, and kept.
  try {
    StagedDirectory s(dir / "file" / "merged", false);
    ADD_FAILURE() << "made a directory under a file";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "file").string() + ": is a file, not a directory, so"),
              std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_text(dir / "file"), "x");
}

}  // namespace
}  // namespace difftx
