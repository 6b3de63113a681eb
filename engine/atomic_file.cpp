#include "engine/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "engine/check.h"

namespace cbst {

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

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

std::string resolve_atomic_destination(const std::string& path) {
  std::string at = path;
  for (int hops = 0; hops < 40; ++hops) {  // 40: the kernel's own limit on link chains
    struct stat st{};
    if (::lstat(at.c_str(), &st) != 0) {
      if (errno == ENOENT) return at;  // a new file (the folder is checked when it is created)
      CBST_THROW("cannot write '", path, "': ", std::strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return at;
    if (!S_ISLNK(st.st_mode))
      CBST_THROW("cannot write '", path, "'", at == path ? "" : " (a link to '" + at + "')", ": it is ",
                 file_kind(st.st_mode), ", and an atomic write would replace it with a regular file; "
                 "give the path of a regular file");
    std::string target(size_t(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
    const ssize_t n = ::readlink(at.c_str(), target.data(), target.size());
    if (n < 0 || size_t(n) >= target.size())
      CBST_THROW("cannot write '", path, "': cannot read the link '", at, "': ", std::strerror(errno));
    target.resize(size_t(n));
    // A relative target is relative to the link's folder.
    at = target.front() == '/' || at.find('/') == std::string::npos ? target : parent_dir(at) + "/" + target;
  }
  CBST_THROW("cannot write '", path, "': more than 40 symbolic links in a chain (a loop?)");
}

AtomicFile::AtomicFile(std::string path) : requested_(std::move(path)) {
  if (requested_.empty() || requested_.back() == '/')
    CBST_THROW("cannot write '", requested_, "': not a file path; give a file name");
  path_ = resolve_atomic_destination(requested_);
  // pid + counter keeps concurrent writers (threads or processes) off each other's temporaries.
  static std::atomic<uint64_t> counter{0};
  const std::string dir = parent_dir(path_);
  temp_path_ = (path_.find('/') == std::string::npos ? std::string() : dir + "/") + "." + base_name(path_) +
               ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ >= 0) return;
  const int err = errno;
  if (err == ENOENT)
    CBST_THROW("cannot write '", requested_, "': the folder '", dir, "' does not exist; create it first");
  CBST_THROW("cannot write '", requested_, "': cannot create '", temp_path_, "' beside it: ", std::strerror(err),
             "; is the folder writable?");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  CBST_CHECK(fd_ >= 0, "write to '", requested_, "' after commit");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0)
      CBST_THROW("writing '", requested_, "' failed: ", put < 0 ? std::strerror(errno) : "nothing written",
                 "; is the disk full?");
    p += put;
    n -= size_t(put);
  }
}

void AtomicFile::commit() {
  CBST_CHECK(fd_ >= 0, "'", requested_, "' committed twice");
  // On failure fd_ stays open, so the destructor closes and removes the temporary.
  if (::fsync(fd_) != 0)
    CBST_THROW("writing '", requested_, "' failed at fsync: ", std::strerror(errno), "; is the disk full?");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    CBST_THROW("writing '", requested_, "' failed at close: ", std::strerror(err), "; is the disk full?");
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    CBST_THROW("cannot write '", requested_, "': renaming '", temp_path_, "' into place failed: ",
               std::strerror(err));
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

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace cbst
