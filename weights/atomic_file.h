// A file that appears at its path complete or not at all (DESIGN §8: "a killed run never
// leaves a half-written file").
//
// Bytes go to a temporary file in the destination folder (same file system, so rename is
// atomic); commit() fsyncs it, renames it over the destination and fsyncs the folder so the
// rename itself survives a power cut. Destruction without commit() removes the temporary.
#pragma once

#include <cstddef>
#include <string>

namespace cbst::weights {

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
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

// Writes `n` bytes atomically to `path`.
void write_file_atomic(const std::string& path, const void* data, size_t n);

}  // namespace cbst::weights
