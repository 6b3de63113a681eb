// The one atomic writer (engine/atomic_file.h). Its callers' tests cover links and FIFOs
// through them (Safetensors.AtomicWriteFollowsLinksAndRefusesFifosAndFolders,
// PngWriter.WritesThroughSymlinksAndRefusesFifos); these cover the writer's own contract.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "engine/atomic_file.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("cbst_atomic_" + std::to_string(::getpid()));
  ScratchDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(AtomicFile, ReplacesTheFileAndLeavesNoTemporary) {
  ScratchDir dir;
  const fs::path file = dir.path / "out.json";
  { std::ofstream(file) << "old contents, longer than the new"; }
  write_text_atomic(file.string(), "new");
  EXPECT_EQ(contents(file), "new");
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, UncommittedWriteLeavesTheOldFileAndNoTemporary) {
  ScratchDir dir;
  const fs::path file = dir.path / "ckpt.bin";
  { std::ofstream(file) << "old"; }
  {
    AtomicFile f(file.string());
    f.write("new bytes", 9);
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), dir.path) << "same folder, so the rename is atomic";
  }
  EXPECT_EQ(contents(file), "old");
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, RelativeLinkIsFollowedFromItsOwnFolder) {
  ScratchDir dir;
  fs::create_directories(dir.path / "real");
  { std::ofstream(dir.path / "real" / "a.txt") << "old"; }
  fs::create_directories(dir.path / "links");
  fs::create_symlink("../real/a.txt", dir.path / "links" / "a.txt");
  write_text_atomic((dir.path / "links" / "a.txt").string(), "new");
  EXPECT_TRUE(fs::is_symlink(dir.path / "links" / "a.txt"));
  EXPECT_EQ(contents(dir.path / "real" / "a.txt"), "new");
}

TEST(AtomicFile, MissingFolderAndLinkLoopsAreUserErrors) {
  ScratchDir dir;
  const std::string missing = (dir.path / "no_such_folder" / "x.json").string();
  std::string e = testing::error_of([&] { write_text_atomic(missing, "x"); });
  EXPECT_NE(e.find("'" + missing + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("does not exist; create it first"), std::string::npos) << e;
  EXPECT_EQ(e.find(".cpp"), std::string::npos) << "no source paths in user errors: " << e;

  fs::create_symlink("loop_b", dir.path / "loop_a");
  fs::create_symlink("loop_a", dir.path / "loop_b");
  e = testing::error_of([&] { write_text_atomic((dir.path / "loop_a").string(), "x"); });
  EXPECT_NE(e.find("a loop?"), std::string::npos) << e;

  e = testing::error_of([&] { write_text_atomic(dir.path.string() + "/", "x"); });
  EXPECT_NE(e.find("not a file path"), std::string::npos) << e;
  EXPECT_EQ(e.find("`"), std::string::npos) << "no raw check expression: " << e;
  EXPECT_EQ(dir.entries(), 2u) << "only the two links";
}

}  // namespace
}  // namespace cbst
