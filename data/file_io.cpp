// Whole-file reads; writes go through engine/atomic_file.h.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "data/image.h"
#include "engine/check.h"

namespace cbst::data {

namespace fs = std::filesystem;

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    CBST_THROW(path, ": no such file; check the path (and the dataset root)");
  if (fs::is_directory(path, ec)) CBST_THROW(path, ": is a folder, expected a file");
  // A FIFO would block the read forever and a device such as /dev/zero never ends.
  if (!fs::is_regular_file(path, ec)) CBST_THROW(path, ": is not a regular file (a FIFO, device or socket)");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) CBST_THROW(path, ": cannot open for reading: ", std::strerror(errno), "; check permissions");
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.insert(bytes.end(), buffer, buffer + n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) CBST_THROW(path, ": read error after ", bytes.size(), " bytes; is the file system healthy?");
  return bytes;
}

}  // namespace cbst::data
