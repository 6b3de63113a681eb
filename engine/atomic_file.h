// The one atomic file writer: a file appears at its path complete or not at all (DESIGN §8:
// "a killed run never leaves a half-written file"). Checkpoints, images, JSON, run records
// and benchmark results all go through it.
//
// Bytes go to a temporary ".NAME.tmp.PID.N" in the destination folder (same file system,
// so rename is atomic); commit() fsyncs it, renames it over the destination and fsyncs the
// folder so the rename itself survives a power cut. Destruction without commit() removes
// the temporary; a kill leaves it behind for the next run to clean (selftrain/run_dir.cpp).
//
// The destination is resolved first: a symbolic link is followed to its target (the target
// is replaced, the link stays, as users expect), and anything that exists but is not a
// regular file (a FIFO, a device such as /dev/full, a folder, a socket) is refused, since
// renaming over it would replace it with a regular file.
#pragma once

#include <cstddef>
#include <string>

namespace cbst {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string requested_;  // the path as given, for messages
  std::string path_;       // what the rename replaces
  std::string temp_path_;
  int fd_ = -1;
};

// The path an atomic write of `path` replaces: `path`, or the final target of the symbolic
// links it names. Throws for a destination that exists and is not a regular file.
std::string resolve_atomic_destination(const std::string& path);

// Writes `n` bytes (or `text`) atomically to `path`.
void write_file_atomic(const std::string& path, const void* data, size_t n);
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace cbst
