// A read-only zip archive reader for PyTorch's zip checkpoints.
//
// PyTorch writes stored (uncompressed) members with zip64 end records and zeroed sizes in the
// local headers, so sizes come from the central directory and the data offset from the
// local header's own name and extra lengths (its extra field carries the 64-byte alignment
// padding). Deflated members are inflated by weights/inflate.h. Every offset and size is
// checked against the archive before use, and CRC-32 is verified on extraction so that a
// flipped byte in a tensor is reported rather than loaded.
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

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

}  // namespace cbst::weights
