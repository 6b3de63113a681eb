#include "weights/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "engine/check.h"

namespace cbst::weights {

namespace {

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  CBST_CHECK(!path_.empty() && path_.back() != '/', "cannot write to '", path_, "': not a file path");
  // pid + counter keeps concurrent writers (threads or processes) off each other's temporaries.
  static std::atomic<unsigned> counter{0};
  const std::string dir = parent_dir(path_);
  temp_path_ = (dir == "." && path_.find('/') == std::string::npos ? std::string() : dir + "/") + "." +
               base_name(path_) + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    CBST_THROW("cannot create '", temp_path_, "': ", std::strerror(errno),
               "; does the folder exist and is it writable?");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  CBST_CHECK(fd_ >= 0, "write to '", path_, "' after commit");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) CBST_THROW("writing '", temp_path_, "' failed: ", std::strerror(errno), "; is the disk full?");
    p += put;
    n -= size_t(put);
  }
}

void AtomicFile::commit() {
  CBST_CHECK(fd_ >= 0, "'", path_, "' committed twice");
  if (::fsync(fd_) != 0) CBST_THROW("fsync of '", temp_path_, "' failed: ", std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(temp_path_.c_str());
    CBST_THROW("closing '", temp_path_, "' failed: ", std::strerror(errno), "; is the disk full?");
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    CBST_THROW("cannot rename '", temp_path_, "' to '", path_, "': ", std::strerror(err));
  }
  const int dir = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

}  // namespace cbst::weights
