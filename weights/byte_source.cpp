#include "weights/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/check.h"

namespace cbst::weights {

void throw_truncated(const ByteSource& src, uint64_t at, uint64_t need, std::string_view what) {
  CBST_THROW("file is truncated: ", what, " needs ", need, " bytes at byte ", at, " but the file has ",
             src.size(), " bytes; was the download interrupted?");
}

void ByteSource::read(uint64_t offset, void* dst, uint64_t n) const {
  if (offset > size() || n > size() - offset) throw_truncated(*this, offset, n, "a read");
  if (n > 0) read_unchecked(offset, dst, n);
}

std::vector<uint8_t> ByteSource::read_vector(uint64_t offset, uint64_t n) const {
  if (offset > size() || n > size() - offset) throw_truncated(*this, offset, n, "a read");
  std::vector<uint8_t> out(n);
  if (n > 0) read_unchecked(offset, out.data(), n);
  return out;
}

void MemorySource::read_unchecked(uint64_t offset, void* dst, uint64_t n) const {
  std::memcpy(dst, data_ + offset, n);
}

FileSource::FileSource(const std::string& path) : ByteSource(path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) CBST_THROW("cannot open '", path, "': ", std::strerror(errno), "; check the path");
  struct stat st{};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    CBST_THROW("'", path, "' is not a regular file; pass a weight file");
  }
  size_ = uint64_t(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read_unchecked(uint64_t offset, void* dst, uint64_t n) const {
  auto* out = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const size_t chunk = size_t(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd_, out, chunk, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      CBST_THROW("read of '", name(), "' failed at byte ", offset, ": ",
                 got < 0 ? std::strerror(errno) : "unexpected end of file",
                 "; is the file being written to?");
    }
    out += got;
    offset += uint64_t(got);
    n -= uint64_t(got);
  }
}

void BufferedSource::read_unchecked(uint64_t offset, void* dst, uint64_t n) const {
  if (n > kWindow / 4) return inner_.read(offset, dst, n);  // large reads gain nothing from the window
  if (offset < window_begin_ || offset + n > window_begin_ + window_.size()) {
    const uint64_t len = std::min<uint64_t>(kWindow, inner_.size() - offset);
    window_.resize(size_t(len));
    inner_.read(offset, window_.data(), len);
    window_begin_ = offset;
  }
  std::memcpy(dst, window_.data() + (offset - window_begin_), n);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  FileSource f(path);
  return f.read_vector(0, f.size());
}

Cursor::Cursor(const ByteSource& src, uint64_t begin, uint64_t end)
    : src_(src), pos_(begin), end_(end) {
  CBST_CHECK(begin <= end && end <= src.size(), "cursor range [", begin, ", ", end,
             ") outside a source of ", src.size(), " bytes");
}

void Cursor::need(uint64_t n, std::string_view what) const {
  if (n > end_ - pos_) throw_truncated(src_, pos_, n, what);
}

void Cursor::seek(uint64_t pos) {
  if (pos > end_) throw_truncated(src_, pos, 0, "a seek");
  pos_ = pos;
}

void Cursor::skip(uint64_t n) {
  need(n, "a skip");
  pos_ += n;
}

void Cursor::bytes(void* dst, uint64_t n) {
  need(n, "a field");
  src_.read(pos_, dst, n);
  pos_ += n;
}

uint8_t Cursor::u8() {
  uint8_t v;
  bytes(&v, 1);
  return v;
}

// Little-endian decoding by shifts, so the readers are correct on any host.
uint16_t Cursor::u16() {
  uint8_t b[2];
  bytes(b, 2);
  return uint16_t(b[0] | (b[1] << 8));
}

uint32_t Cursor::u32() {
  uint8_t b[4];
  bytes(b, 4);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

uint64_t Cursor::u64() {
  const uint64_t lo = u32();
  const uint64_t hi = u32();
  return lo | hi << 32;
}

std::string Cursor::string(uint64_t n) {
  need(n, "a string");
  std::string s(n, '\0');
  src_.read(pos_, s.data(), n);
  pos_ += n;
  return s;
}

std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += char(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

uint64_t checked_mul(uint64_t a, uint64_t b, std::string_view what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) CBST_THROW(what, " overflows 64 bits; the file is corrupt");
  return r;
}

uint64_t checked_add(uint64_t a, uint64_t b, std::string_view what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) CBST_THROW(what, " overflows 64 bits; the file is corrupt");
  return r;
}

}  // namespace cbst::weights
