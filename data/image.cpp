// Image and label readers (PNG via libpng, JPEG and BMP via stb_image), writers and panels.
#include "data/image.h"

#include <cstdio>
#include <cstring>
#include <new>

#include <stb_image.h>

#include "data/png_io.h"
#include "engine/check.h"

namespace cbst::data {

Image Image::blank(int width, int height, int channels, uint8_t value) {
  Image im{width, height, channels, {}};
  im.pixels.assign(size_t(width) * height * channels, value);
  return im;
}

Labels Labels::blank(int width, int height, uint8_t value) {
  Labels l{width, height, {}};
  l.ids.assign(size_t(width) * height, value);
  return l;
}

namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

bool has_png_signature(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// stb_image decodes JPEG and BMP (data/stb_image_impl.cpp compiles nothing else). The
// header is checked here first, and the decoded size is bounded twice: by an absolute cap
// and by the file's own size, since a JPEG needs at least one bit per 8x8 block and
// component (about 2000 decoded bytes per file byte with stb's coefficient buffers) and a
// BMP stores at least one bit per pixel.
constexpr uint64_t kMaxStbPixels = uint64_t(1) << 26;  // 8192 x 8192
constexpr uint64_t kMaxStbBytesPerFileByte = 4096;

const char* stb_format(const std::vector<uint8_t>& b) {
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  return nullptr;
}

// Two holes of stb_image 2.27 (Debian 12), both closed here before stb sees the bytes, by a
// walk over the markers that follows stb's own order:
// - it trusts a DHT segment's 16 code counts: when they add up to more than 256 it writes
//   past its Huffman tables (fixed upstream in 2.28). Every DHT segment of the file,
//   including those between the scans of a progressive JPEG, is checked.
// - it decodes a scan with whatever Huffman table the scan names, defined or not: a table no
//   DHT has defined is uninitialised heap memory, and with the leftovers of an earlier
//   decode its lookup indexes outside the table (found by fuzz_image). A scan may name only
//   tables defined before it, counting only those it decodes with: a baseline scan uses its
//   DC and AC tables, a progressive DC scan its DC table (none when refining, Ah > 0), a
//   progressive AC scan its AC table; encoders write 0 for the unused ones.
void check_jpeg_huffman_tables(const std::vector<uint8_t>& b, const std::string& path) {
  auto at = [&b](size_t k) -> size_t { return k < b.size() ? b[k] : 0; };  // stb reads zeros past the end
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][table]
  bool progressive = false, seen_frame = false;
  size_t i = 2;  // after SOI
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) {
      ++i;  // entropy-coded data (after SOS): scan for the next marker
      continue;
    }
    const uint8_t m = b[i + 1];
    if (m == 0xFF || m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
      i += m == 0xFF ? 1 : 2;  // fill byte, stuffed zero, or a marker without a length
      continue;
    }
    if (m == 0xD9) return;  // EOI
    const size_t length = size_t(b[i + 2]) << 8 | b[i + 3];
    if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && !seen_frame) {
      seen_frame = true;  // stb reads the first frame header and refuses any later one
      progressive = m == 0xC2;
    }
    if (m == 0xC4) {
      // Walked exactly as stb does: tables follow each other while the declared length is
      // not used up, even when the last one starts a few bytes before the segment's end
      // (its counts then come from the bytes after it).
      size_t p = i + 4;
      const size_t end = i + 2 + length;
      while (p < end) {
        size_t n = 0;
        for (int k = 1; k <= 16; ++k) n += at(p + size_t(k));
        if (n > 256)
          CBST_THROW(path, ": corrupt JPEG: a Huffman table (DHT at byte ", i, ") declares ", n,
                     " codes, more than 256");
        const size_t tc = at(p) >> 4, th = at(p) & 15;
        if (tc <= 1 && th <= 3) defined[tc][th] = true;  // stb refuses other classes and ids
        p += 17 + n;
      }
    }
    if (m == 0xDA) {
      const size_t components = at(i + 4);
      const size_t spectral_start = at(i + 5 + 2 * components);
      const size_t approximation_high = at(i + 7 + 2 * components) >> 4;
      const bool uses_dc = !progressive || (spectral_start == 0 && approximation_high == 0);
      const bool uses_ac = !progressive || spectral_start > 0;
      for (size_t c = 0; c < components && c < 4; ++c) {
        const size_t q = at(i + 6 + 2 * c), dc = q >> 4, ac = q & 15;
        if (dc > 3 || ac > 3) continue;  // stb refuses the scan
        if (uses_dc && !defined[0][dc])
          CBST_THROW(path, ": corrupt JPEG: the scan at byte ", i, " decodes with Huffman DC table ", dc,
                     ", which no DHT before it defines");
        if (uses_ac && !defined[1][ac])
          CBST_THROW(path, ": corrupt JPEG: the scan at byte ", i, " decodes with Huffman AC table ", ac,
                     ", which no DHT before it defines");
      }
    }
    if (length < 2) return;  // corrupt: stb refuses it
    i += 2 + length;
  }
}

// `channels` = 0 keeps the file's channel count, returned in `channels_out`.
std::vector<uint8_t> decode_with_stb(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                                     int& width, int& height, int& channels_out) {
  if (bytes.empty()) CBST_THROW(path, ": file is empty; was the download interrupted?");
  const char* format = stb_format(bytes);
  if (!format)
    CBST_THROW(path, ": not a PNG, JPEG or BMP file (", bytes.size(), " bytes, first byte 0x", std::hex,
               int(bytes[0]), std::dec, "); convert the image to PNG");
  if (bytes.size() > size_t(INT32_MAX)) CBST_THROW(path, ": ", format, " file too large for stb_image");
  const auto* buf = bytes.data();
  const int len = int(bytes.size());
  if (format[0] == 'J') check_jpeg_huffman_tables(bytes, path);  // stbi_info reads them too
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(buf, len, &w, &h, &n) || w <= 0 || h <= 0)
    CBST_THROW(path, ": unreadable ", format, " header (", stbi_failure_reason(), "); the file is corrupt or truncated");
  const uint64_t pixels = uint64_t(w) * uint64_t(h);
  const uint64_t decoded = pixels * uint64_t(channels ? channels : n);
  if (pixels > kMaxStbPixels || decoded > kMaxStbBytesPerFileByte * bytes.size())
    CBST_THROW(path, ": refusing to decode a ", w, "x", h, " ", format, " from ", bytes.size(), " bytes (limits: ",
               kMaxStbPixels, " pixels, ", kMaxStbBytesPerFileByte, " decoded bytes per file byte); the header is corrupt");
  stbi_uc* p = stbi_load_from_memory(buf, len, &w, &h, &n, channels);
  if (!p) CBST_THROW(path, ": corrupt or truncated ", format, ": ", stbi_failure_reason());
  channels_out = channels ? channels : n;
  std::vector<uint8_t> out(p, p + size_t(w) * size_t(h) * size_t(channels_out));
  stbi_image_free(p);
  width = w;
  height = h;
  return out;
}

}  // namespace

bool is_png_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  uint8_t sig[8] = {0};
  const size_t n = std::fread(sig, 1, 8, f);
  std::fclose(f);
  return n == 8 && std::memcmp(sig, kPngSignature, 8) == 0;
}

PngHeader read_png_header(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) CBST_THROW(path, ": cannot open: ", std::strerror(errno));
  uint8_t b[33] = {0};
  const size_t n = std::fread(b, 1, sizeof b, f);
  std::fclose(f);
  if (n < 33 || std::memcmp(b, kPngSignature, 8) != 0 || std::memcmp(b + 12, "IHDR", 4) != 0)
    CBST_THROW(path, ": not a PNG file or header truncated (", n, " bytes read)");
  PngHeader h;
  h.width = int(be32(b + 16));
  h.height = int(be32(b + 20));
  h.bit_depth = b[24];
  h.color_type = b[25];
  return h;
}

// The decoders bound what they allocate by the file's size and fixed caps; if memory still
// runs out (a large valid image on a small machine), the error names the file and stage.
constexpr const char* kImageOutOfMemoryAdvice = "free memory or use smaller images";

static Image read_image_rgb_unguarded(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  Image im;
  if (has_png_signature(bytes)) {
    PngDecodeState st;
    decode_png(st, bytes, PngMode::rgb8, path);
    CBST_CHECK(st.channels == 3 && st.bit_depth == 8, path, ": unexpected decoded layout");
    im.width = st.header.width;
    im.height = st.header.height;
    im.channels = 3;
    im.pixels = std::move(st.pixels);  // rowbytes == 3 * width for 8-bit RGB
    return im;
  }
  im.pixels = decode_with_stb(bytes, path, 3, im.width, im.height, im.channels);
  return im;
}

Image read_image_rgb(const std::string& path) {
  return naming_out_of_memory(path, "decoding the image", kImageOutOfMemoryAdvice,
                              [&] { return read_image_rgb_unguarded(path); });
}

static RawLabels read_label_values_unguarded(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  RawLabels out;
  if (has_png_signature(bytes)) {
    PngDecodeState st;
    decode_png(st, bytes, PngMode::raw, path);
    out.width = st.header.width;
    out.height = st.header.height;
    const size_t npix = size_t(out.width) * out.height;
    out.values.resize(npix);
    const int c = st.channels;
    // Channel 0 of each pixel: the class id for SYNTHIA's (class, instance) label images.
    if (st.bit_depth == 16) {
      for (int y = 0; y < out.height; ++y) {
        const uint8_t* row = st.rows[y];
        for (int x = 0; x < out.width; ++x) {
          uint16_t v;
          std::memcpy(&v, row + size_t(x) * c * 2, 2);
          out.values[size_t(y) * out.width + x] = v;
        }
      }
    } else {
      for (int y = 0; y < out.height; ++y) {
        const uint8_t* row = st.rows[y];
        for (int x = 0; x < out.width; ++x) out.values[size_t(y) * out.width + x] = row[size_t(x) * c];
      }
    }
    return out;
  }
  int c = 0;
  const std::vector<uint8_t> samples = decode_with_stb(bytes, path, 0, out.width, out.height, c);
  const size_t npix = size_t(out.width) * size_t(out.height);
  out.values.resize(npix);
  for (size_t i = 0; i < npix; ++i) out.values[i] = samples[i * size_t(c)];  // channel 0, 8-bit
  return out;
}

RawLabels read_label_values(const std::string& path) {
  return naming_out_of_memory(path, "decoding the label image", kImageOutOfMemoryAdvice,
                              [&] { return read_label_values_unguarded(path); });
}

void write_png_grey(const std::string& path, const Labels& labels) {
  PngWriteSpec spec{.width = labels.width, .height = labels.height, .channels = 1, .bit_depth = 8};
  spec.samples8 = labels.ids;
  write_png(path, spec);
}

void write_png(const std::string& path, const Image& image) {
  CBST_CHECK(image.channels == 1 || image.channels == 3, path,
             ": write_png(Image) takes 1 or 3 channels, got ", image.channels);
  PngWriteSpec spec{.width = image.width, .height = image.height, .channels = image.channels,
                    .bit_depth = 8};
  spec.samples8 = image.pixels;
  write_png(path, spec);
}

Image side_by_side(const std::vector<const Image*>& images, int gap) {
  CBST_CHECK(!images.empty(), "side_by_side: no images");
  const int h = images[0]->height;
  std::vector<int> widths;
  int total = 0;
  for (const Image* im : images) {
    CBST_CHECK(im->width > 0 && im->height > 0 && (im->channels == 1 || im->channels == 3),
               "side_by_side: images must be non-empty grey or RGB");
    widths.push_back(int(int64_t(im->width) * h / im->height));
    total += widths.back();
  }
  total += gap * int(images.size() - 1);
  Image out = Image::blank(total, h, 3, 255);
  int x0 = 0;
  for (size_t k = 0; k < images.size(); ++k) {
    const Image& im = *images[k];
    for (int y = 0; y < h; ++y) {
      const int sy = int(int64_t(y) * im.height / h);
      uint8_t* dst = out.row(y) + size_t(x0) * 3;
      for (int x = 0; x < widths[k]; ++x) {
        const int sx = int(int64_t(x) * im.width / widths[k]);
        const uint8_t* s = im.row(sy) + size_t(sx) * im.channels;
        for (int c = 0; c < 3; ++c) dst[x * 3 + c] = s[im.channels == 3 ? c : 0];
      }
    }
    x0 += widths[k] + gap;
  }
  return out;
}

}  // namespace cbst::data
