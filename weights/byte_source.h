// Random-access byte sources for the weight readers, and a bounds-checked cursor over them.
//
// Every reader works on a ByteSource so that tests can feed thousands of truncated or
// corrupted variants from memory while real files are read with pread (a 500 MB checkpoint
// is never copied twice). Every read is bounds-checked against size(); a read past the end
// throws a "truncated" error instead of touching memory outside the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "engine/check.h"

namespace cbst::weights {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Copies [offset, offset + n) into dst; throws when the range is not inside the source.
  void read(uint64_t offset, void* dst, uint64_t n) const;
  std::vector<uint8_t> read_vector(uint64_t offset, uint64_t n) const;
  // Name used in error messages (the path, or "<memory>").
  const std::string& name() const { return name_; }

 protected:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}
  virtual void read_unchecked(uint64_t offset, void* dst, uint64_t n) const = 0;

 private:
  std::string name_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size, std::string name = "<memory>")
      : ByteSource(std::move(name)), data_(data), size_(size) {}
  explicit MemorySource(const std::vector<uint8_t>& bytes, std::string name = "<memory>")
      : MemorySource(bytes.data(), bytes.size(), std::move(name)) {}
  uint64_t size() const override { return size_; }
  const uint8_t* data() const { return data_; }

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override;

 private:
  const uint8_t* data_;
  size_t size_;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A read-ahead window over another source, for parsers that read a field at a time (the
// legacy .pth pickle, .params records): one pread per 64 KB instead of one per byte. Not
// thread-safe; the inner source must outlive it.
class BufferedSource : public ByteSource {
 public:
  explicit BufferedSource(const ByteSource& inner) : ByteSource(inner.name()), inner_(inner) {}
  uint64_t size() const override { return inner_.size(); }

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override;

 private:
  static constexpr uint64_t kWindow = uint64_t(1) << 16;
  const ByteSource& inner_;
  mutable std::vector<uint8_t> window_;
  mutable uint64_t window_begin_ = 0;
};

// The whole file in memory, for the formats that are parsed sequentially (legacy .pth,
// .params, .caffemodel).
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Runs `read` on the file `name` (every reader's entry point by path goes through here): its
// cbst::Error gains "name: " in front, and memory running out becomes an error naming the
// file and `stage` ("reading it as safetensors") instead of a bare std::bad_alloc.
template <class F>
auto reading_file(const std::string& name, const std::string& stage, F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const Error& e) {
    rethrow_with_context(e, name + ": ");
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(name, stage, "free memory or use a machine with more");
  }
}

// A sequential little-endian reader over [begin, end) of a source.
class Cursor {
 public:
  Cursor(const ByteSource& src, uint64_t begin, uint64_t end);
  explicit Cursor(const ByteSource& src) : Cursor(src, 0, src.size()) {}

  uint64_t pos() const { return pos_; }
  uint64_t end() const { return end_; }
  uint64_t remaining() const { return end_ - pos_; }
  bool at_end() const { return pos_ == end_; }
  void seek(uint64_t pos);
  void skip(uint64_t n);

  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  int32_t i32() { return int32_t(u32()); }
  int64_t i64() { return int64_t(u64()); }
  void bytes(void* dst, uint64_t n);
  std::string string(uint64_t n);
  // Throws a truncation error unless n more bytes are available (before allocating n bytes).
  void need(uint64_t n, std::string_view what) const;

 private:
  const ByteSource& src_;
  uint64_t pos_;
  uint64_t end_;
};

// "file is truncated at byte P of S" style message helpers.
[[noreturn]] void throw_truncated(const ByteSource& src, uint64_t at, uint64_t need,
                                  std::string_view what);

// A name from a file as it may appear in a message: control bytes (NUL above all, which would
// cut the message short) escaped as \xNN, and at most 80 bytes.
std::string printable(std::string_view s);

// Overflow-checked arithmetic for sizes read from files.
uint64_t checked_mul(uint64_t a, uint64_t b, std::string_view what);
uint64_t checked_add(uint64_t a, uint64_t b, std::string_view what);

}  // namespace cbst::weights
