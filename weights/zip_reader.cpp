#include "weights/zip_reader.h"

#define ZLIB_CONST  // next_in points at const bytes
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <new>

#include "engine/check.h"

namespace cbst::weights {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kCentralSize = 46;

// The end record sits in the last 22 + 65535 (maximum comment) bytes.
uint64_t find_end_record(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size < kEndSize) CBST_THROW("zip: archive of ", size, " bytes has no end-of-central-directory record; the file is truncated");
  const uint64_t window = std::min<uint64_t>(size, kEndSize + 65535);
  const std::vector<uint8_t> tail = src.read_vector(size - window, window);
  for (uint64_t i = window - kEndSize + 1; i-- > 0;) {
    const uint32_t sig = uint32_t(tail[i]) | uint32_t(tail[i + 1]) << 8 | uint32_t(tail[i + 2]) << 16 |
                         uint32_t(tail[i + 3]) << 24;
    if (sig == kEndSig) return size - window + i;
  }
  CBST_THROW("zip: no end-of-central-directory record; the file is truncated or not a zip archive");
}

}  // namespace

std::vector<uint8_t> inflate_raw(const uint8_t* src, size_t src_size, uint64_t size) {
  // DEFLATE cannot expand more than 1032:1 (258-byte matches coded in 2 bits); a larger
  // declared size is a lie, and refusing it here avoids allocating it.
  if (size / 1032 > src_size + 1)
    CBST_THROW("deflate: declared size ", size, " is impossible for ", src_size, " compressed bytes; the file is corrupt");
  z_stream zs{};
  // Negative window bits: a raw stream (no zlib header or Adler-32), 32 KiB window.
  const int init = inflateInit2(&zs, -15);
  if (init == Z_MEM_ERROR) throw std::bad_alloc();
  if (init != Z_OK) CBST_THROW("deflate: zlib ", zlibVersion(), " refused to start (error ", init, ")");
  const std::unique_ptr<z_stream, int (*)(z_streamp)> end(&zs, inflateEnd);
  std::vector<uint8_t> out(size_t(size), 0);
  uint8_t no_room = 0;  // zlib refuses a null output pointer even when it has no room to use
  // zlib counts in 32-bit uInt: hand it both buffers in pieces.
  uint64_t in_left = src_size, out_left = size;
  zs.next_in = src;
  zs.next_out = size ? out.data() : &no_room;
  while (true) {
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = uInt(std::min<uint64_t>(in_left, UINT_MAX));
      in_left -= zs.avail_in;
    }
    if (zs.avail_out == 0 && out_left > 0) {
      zs.avail_out = uInt(std::min<uint64_t>(out_left, UINT_MAX));
      out_left -= zs.avail_out;
    }
    const int ret = inflate(&zs, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) break;
    if (ret == Z_OK) continue;  // progress was made
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    if (ret == Z_DATA_ERROR) CBST_THROW("deflate: ", zs.msg ? zs.msg : "invalid data", "; the file is corrupt");
    if (ret != Z_BUF_ERROR) CBST_THROW("deflate: zlib error ", ret, "; the file is corrupt");
    // No progress possible: out of input, or out of room for the output.
    if (zs.avail_in == 0 && in_left == 0)
      CBST_THROW("deflate: compressed data ends early; the file is truncated; was the download interrupted?");
    CBST_THROW("deflate: output exceeds the declared ", size, " bytes; the file is corrupt");
  }
  const uint64_t produced = size - out_left - zs.avail_out;
  if (produced != size)
    CBST_THROW("deflate: produced ", produced, " bytes, the zip directory declares ", size, "; the file is corrupt");
  return out;
}

ZipArchive::ZipArchive(const ByteSource& src) : src_(src) {
  const uint64_t end_at = find_end_record(src);
  Cursor end(src, end_at, src.size());
  end.skip(4 + 2 + 2 + 2);
  uint64_t count = end.u16();
  uint64_t cd_size = end.u32();
  uint64_t cd_offset = end.u32();

  // PyTorch always writes zip64 records; they hold the true values past 4 GiB.
  if (end_at >= 20) {
    Cursor loc(src, end_at - 20, end_at);
    if (loc.u32() == kZip64LocatorSig) {
      loc.skip(4);
      const uint64_t z64_at = loc.u64();
      Cursor z(src, std::min(z64_at, src.size()), src.size());
      if (z.u32() != kZip64EndSig) CBST_THROW("zip: zip64 end record missing at byte ", z64_at, "; the file is corrupt");
      z.skip(8 + 2 + 2 + 4 + 4 + 8);
      count = z.u64();
      cd_size = z.u64();
      cd_offset = z.u64();
    }
  }
  if (cd_offset > src.size() || cd_size > src.size() - cd_offset)
    CBST_THROW("zip: central directory [", cd_offset, ", +", cd_size, ") lies outside the ", src.size(),
               "-byte file; the file is truncated or corrupt");
  if (count > cd_size / kCentralSize)
    CBST_THROW("zip: ", count, " entries cannot fit in a ", cd_size, "-byte central directory; the file is corrupt");

  Cursor cd(src, cd_offset, cd_offset + cd_size);
  entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (cd.u32() != kCentralSig) CBST_THROW("zip: central directory entry ", i, " has a bad signature; the file is corrupt");
    ZipEntry e;
    cd.skip(2 + 2);
    const uint16_t flags = cd.u16();
    e.method = cd.u16();
    cd.skip(2 + 2);
    e.crc32 = cd.u32();
    e.compressed_size = cd.u32();
    e.size = cd.u32();
    const uint16_t name_len = cd.u16();
    const uint16_t extra_len = cd.u16();
    const uint16_t comment_len = cd.u16();
    cd.skip(2 + 2 + 4);
    e.local_header_offset = cd.u32();
    e.name = cd.string(name_len);
    if (flags & 1) CBST_THROW("zip: entry '", printable(e.name), "' is encrypted; PyTorch never writes encrypted archives");
    // zip64 extra field: the 64-bit values of whichever fields hold 0xFFFFFFFF, in this order.
    const uint64_t extra_end = cd.pos() + extra_len;
    cd.need(extra_len, "a zip extra field");
    while (cd.pos() + 4 <= extra_end) {
      const uint16_t id = cd.u16();
      const uint16_t len = cd.u16();
      if (cd.pos() + len > extra_end) CBST_THROW("zip: entry '", printable(e.name), "' has an extra field past its end");
      const uint64_t field_end = cd.pos() + len;
      if (id == 0x0001) {
        if (e.size == 0xFFFFFFFFu && cd.pos() + 8 <= field_end) e.size = cd.u64();
        if (e.compressed_size == 0xFFFFFFFFu && cd.pos() + 8 <= field_end) e.compressed_size = cd.u64();
        if (e.local_header_offset == 0xFFFFFFFFu && cd.pos() + 8 <= field_end) e.local_header_offset = cd.u64();
      }
      cd.seek(field_end);
    }
    cd.seek(extra_end);
    cd.skip(comment_len);
    if (e.method != 0 && e.method != 8)
      CBST_THROW("zip: entry '", printable(e.name), "' uses compression method ", e.method,
                 "; only stored (0) and deflate (8) are supported; re-save it with torch.save");
    entries_.push_back(std::move(e));
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  for (const ZipEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

uint64_t ZipArchive::data_offset(const ZipEntry& e) const {
  Cursor local(src_, std::min(e.local_header_offset, src_.size()), src_.size());
  if (local.u32() != kLocalSig)
    CBST_THROW("zip: entry '", printable(e.name), "' has no local header at byte ", e.local_header_offset, "; the file is corrupt");
  local.skip(2 + 2 + 2 + 2 + 2 + 4 + 4 + 4);
  const uint16_t name_len = local.u16();
  const uint16_t extra_len = local.u16();
  const uint64_t at = local.pos() + name_len + extra_len;
  if (at > src_.size() || e.compressed_size > src_.size() - at)
    CBST_THROW("zip: entry '", printable(e.name), "' needs bytes [", at, ", ", at + e.compressed_size, ") of a ", src_.size(),
               "-byte file; the file is truncated; was the download interrupted?");
  return at;
}

std::vector<uint8_t> ZipArchive::read(const ZipEntry& e) const {
  const uint64_t at = data_offset(e);
  std::vector<uint8_t> data;
  if (e.method == 0) {
    if (e.size != e.compressed_size)
      CBST_THROW("zip: stored entry '", printable(e.name), "' declares ", e.size, " bytes but occupies ", e.compressed_size,
                 "; the file is corrupt");
    data = src_.read_vector(at, e.size);
  } else {
    const std::vector<uint8_t> packed = src_.read_vector(at, e.compressed_size);
    try {
      data = inflate_raw(packed.data(), packed.size(), e.size);
    } catch (const Error& err) {
      rethrow_with_context(err, "zip: entry '" + printable(e.name) + "': ");
    }
  }
  const uint32_t crc = uint32_t(crc32_z(0, data.data(), data.size()));
  if (crc != e.crc32)
    CBST_THROW("zip: entry '", printable(e.name), "' fails its CRC-32 check (stored ", e.crc32, ", computed ", crc,
               "); the file is corrupt; download it again");
  return data;
}

}  // namespace cbst::weights
