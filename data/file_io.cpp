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

namespace {

// What the rename replaces: the path, or the final target of its symbolic links (the link
// stays, the file it names is replaced, as users expect). Anything else that exists (a FIFO,
// a device such as /dev/full, a folder) is refused: the rename would turn it into a regular
// file. weights/atomic_file.cpp resolves checkpoints the same way.
fs::path write_destination(const std::string& path) {
  fs::path at(path);
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(at, ec);
    if (st.type() == fs::file_type::not_found) return at;
    if (ec) CBST_THROW(path, ": cannot write: ", ec.message());
    if (st.type() == fs::file_type::regular) return at;
    if (st.type() != fs::file_type::symlink)
      CBST_THROW(path, at == fs::path(path) ? "" : " (a link to " + at.string() + ")", ": is ",
                 st.type() == fs::file_type::directory ? "a folder" : "not a regular file (a FIFO, device or socket)",
                 ", which an atomic write would replace with a regular file; give the path of a regular file");
    const fs::path target = fs::read_symlink(at, ec);
    if (ec) CBST_THROW(path, ": cannot read the link ", at.string(), ": ", ec.message());
    at = target.is_absolute() ? target : at.parent_path() / target;
  }
  CBST_THROW(path, ": more than 40 symbolic links in a chain (a loop?)");
}

}  // namespace

void write_file_atomic(const std::string& requested, const void* data, size_t size) {
  static std::atomic<uint64_t> counter{0};
  const fs::path target = write_destination(requested);
  const std::string path = target.string();
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
