// Whole-file reads and atomic writes (temp file in the same folder, fsync, rename).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
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

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  static std::atomic<uint64_t> counter{0};
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    CBST_THROW(path, ": folder ", folder.string(), " does not exist; create it first");
  // Same folder as the target so that rename() stays on one file system and is atomic.
  std::string name = target.filename().string();
  name.insert(0, 1, '.');
  name.append(".tmp.").append(std::to_string(::getpid())).append(".");
  name.append(std::to_string(counter.fetch_add(1)));
  const std::string tmp = (folder / name).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) CBST_THROW(path, ": cannot create ", tmp, ": ", std::strerror(errno), "; is the folder writable?");
  const auto* p = static_cast<const uint8_t*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      CBST_THROW(path, ": write failed after ", size - left, " of ", size, " bytes: ",
                 std::strerror(err), "; is the disk full?");
    }
    p += w;
    left -= size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    CBST_THROW(path, ": cannot flush ", tmp, ": ", std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    CBST_THROW(path, ": cannot rename ", tmp, " into place: ", std::strerror(err));
  }
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace cbst::data
