// A read-only zip archive reader for PyTorch's zip checkpoints.
// Ours rather than libzip or minizip: torch.save archives need only the central directory and
// each stored member's data offset (tensors are read in place); zlib does DEFLATE and CRC-32.
//
// PyTorch writes stored (uncompressed) members with zip64 end records and zeroed sizes in the
// local headers, so sizes come from the central directory and the data offset from the
// local header's own name and extra lengths (its extra field carries the 64-byte alignment
// padding). Deflated members are inflated by zlib. Every offset and size is checked against
// the archive before use, and CRC-32 (zlib's) is verified on extraction so that a flipped byte
// in a tensor is reported rather than loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weights/byte_source.h"

namespace cbst::weights {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_header_offset = 0;
};

class ZipArchive {
 public:
  explicit ZipArchive(const ByteSource& src);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ZipEntry* find(const std::string& name) const;
  // The member's uncompressed bytes, CRC-checked.
  std::vector<uint8_t> read(const ZipEntry& entry) const;
  // Offset of the member's data in the archive.
  uint64_t data_offset(const ZipEntry& entry) const;

 private:
  const ByteSource& src_;
  std::vector<ZipEntry> entries_;
};

// Raw DEFLATE (RFC 1951, a deflated zip member) through zlib. The output must be exactly
// `size` bytes (the central directory's value): a stream that would produce more or fewer, or
// that needs input past its end, is an error. `size` is checked against DEFLATE's 1032:1
// limit before anything is allocated, so memory and time stay proportional to the input.
std::vector<uint8_t> inflate_raw(const uint8_t* src, size_t src_size, uint64_t size);

}  // namespace cbst::weights
