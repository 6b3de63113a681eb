// The zip directory reader and zlib's inflate as the .pth zip reader uses them: every entry
// of the archive is read (inflated and CRC-checked). Input that is not a zip is a raw DEFLATE
// stream after a 4-byte declared size, for inflate_raw and its bounds alone.
#include "fuzz/fuzz_common.h"
#include "weights/byte_source.h"
#include "weights/zip_reader.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.zip");
  if (size >= 4 && data[0] == 'P' && data[1] == 'K') {
    const cbst::weights::ZipArchive zip(src);
    for (const cbst::weights::ZipEntry& e : zip.entries()) {
      try {
        zip.read(e);
      } catch (const cbst::Error&) {
      }
    }
  } else if (size >= 4) {
    const uint64_t declared = uint64_t(data[0]) | uint64_t(data[1]) << 8 | uint64_t(data[2]) << 16 | uint64_t(data[3]) << 24;
    cbst::weights::inflate_raw(data + 4, size - 4, declared);
  }
}
