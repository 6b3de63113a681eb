// PNG decoding and encoding through libpng, from and to memory.
//
// libpng reports errors by longjmp. The functions that call libpng keep every object with a
// destructor outside their own frame (in the caller's PngDecodeState) and read the error
// message back after the jump, so a corrupt file becomes a cbst::Error and never a crash or
// a leak.
#include <png.h>

#include <csetjmp>
#include <cstring>

#include "data/image.h"
#include "data/png_io.h"
#include "engine/check.h"

namespace cbst::data {

namespace {

// Decoded images are bounded before anything is allocated, so that a forged header costs
// nothing: at most kMaxPixels pixels (8192 x 8192; Cityscapes is 2048 x 1024), which also
// bounds the label conversion after decoding (2 bytes a pixel), at most kMaxDecodedBytes,
// and at most what the file's compressed data can hold: DEFLATE expands at most 1032:1,
// and every row carries a filter byte.
constexpr uint64_t kMaxPixels = uint64_t(1) << 26;
constexpr uint64_t kMaxDecodedBytes = uint64_t(1) << 29;
constexpr uint64_t kMaxDeflateRatio = 1032;

struct MemoryReader {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
};

struct ErrorSink {
  char message[512] = {0};
};

void on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof sink->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}  // benign (e.g. unknown chunks, bad sRGB)

void read_from_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<MemoryReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->size) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "file is truncated at byte %zu of a PNG that needs more",
                  r->size);
    png_error(png, msg);
  }
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

}  // namespace

// Returns false with sink.message set when libpng fails. Only plain data lives in this frame.
static bool decode_png_raw(PngDecodeState& st, const uint8_t* bytes, size_t size, PngMode mode,
                           ErrorSink& sink) {
  MemoryReader reader{bytes, size, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (!png) {
    std::snprintf(sink.message, sizeof sink.message, "out of memory creating the PNG reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(sink.message, sizeof sink.message, "out of memory creating the PNG reader");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &reader, read_from_memory);
  png_read_info(png, info);
  st.header.width = int(png_get_image_width(png, info));
  st.header.height = int(png_get_image_height(png, info));
  st.header.bit_depth = png_get_bit_depth(png, info);
  st.header.color_type = png_get_color_type(png, info);
  const int ct = st.header.color_type;
  const int bd = st.header.bit_depth;
  // The smallest the decompressed data can be (one filter byte and the packed samples of
  // each row, without interlacing); at most kMaxDeflateRatio times the file.
  const uint64_t stored =
      (1 + (uint64_t(st.header.width) * png_get_channels(png, info) * uint64_t(bd) + 7) / 8) * uint64_t(st.header.height);

  if (mode == PngMode::rgb8) {
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (bd == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
  } else if (mode == PngMode::raw) {
    // Indices and grey values as stored: unpack sub-byte samples without scaling, keep the
    // palette unexpanded, keep 16-bit samples.
    if (bd < 8) png_set_packing(png);
    if (bd == 16) png_set_swap(png);  // PNG is big-endian; deliver host-order uint16
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  st.channels = png_get_channels(png, info);
  st.bit_depth = png_get_bit_depth(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  const uint64_t total = uint64_t(rowbytes) * uint64_t(st.header.height);
  const uint64_t pixels = uint64_t(st.header.width) * uint64_t(st.header.height);
  if (st.header.width <= 0 || st.header.height <= 0 || pixels > kMaxPixels || total > kMaxDecodedBytes ||
      stored > kMaxDeflateRatio * size) {
    std::snprintf(sink.message, sizeof sink.message,
                  "refusing to decode a %dx%d image (%llu bytes) from a %zu-byte file (limits: %llu pixels, "
                  "%llu bytes, %llu decompressed bytes per file byte); the header is corrupt",
                  st.header.width, st.header.height, (unsigned long long)total, size,
                  (unsigned long long)kMaxPixels, (unsigned long long)kMaxDecodedBytes,
                  (unsigned long long)kMaxDeflateRatio);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  st.rowbytes = rowbytes;
  st.pixels.resize(total);
  st.rows.resize(st.header.height);
  for (int y = 0; y < st.header.height; ++y) st.rows[y] = st.pixels.data() + size_t(y) * rowbytes;
  png_read_image(png, st.rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

void decode_png(PngDecodeState& st, const std::vector<uint8_t>& bytes, PngMode mode,
                const std::string& path) {
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8) != 0)
    CBST_THROW(path, ": not a PNG file (bad signature, ", bytes.size(), " bytes)");
  ErrorSink sink;
  if (!decode_png_raw(st, bytes.data(), bytes.size(), mode, sink))
    CBST_THROW(path, ": corrupt or truncated PNG (", bytes.size(), " bytes): ", sink.message,
               "; was the download or copy interrupted?");
}

namespace {

struct MemoryWriter {
  std::vector<uint8_t>* out;
};
void write_to_memory(png_structp png, png_bytep data, png_size_t n) {
  auto* w = static_cast<MemoryWriter*>(png_get_io_ptr(png));
  w->out->insert(w->out->end(), data, data + n);
}
void flush_memory(png_structp) {}

}  // namespace

static bool encode_png_raw(std::vector<uint8_t>& out, std::vector<png_bytep>& rows,
                           std::vector<png_color>& palette, const PngWriteSpec& spec,
                           std::vector<uint16_t>& big_endian, ErrorSink& sink) {
  MemoryWriter writer{&out};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &writer, write_to_memory, flush_memory);
  // Fast zlib settings: label maps compress well anyway and outputs are written often.
  png_set_compression_level(png, 3);
  int color_type = PNG_COLOR_TYPE_GRAY;
  if (!spec.palette.empty()) {
    color_type = PNG_COLOR_TYPE_PALETTE;
  } else {
    static const int kTypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                  PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    color_type = kTypes[spec.channels];
  }
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) {
    for (size_t i = 0; i < spec.palette.size(); ++i)
      palette[i] = png_color{spec.palette[i][0], spec.palette[i][1], spec.palette[i][2]};
    png_set_PLTE(png, info, palette.data(), int(spec.palette.size()));
  }
  png_write_info(png, info);
  const int channels = spec.palette.empty() ? spec.channels : 1;
  const size_t row_samples = size_t(spec.width) * channels;
  for (int y = 0; y < spec.height; ++y) {
    if (spec.bit_depth == 16)
      rows[y] = reinterpret_cast<png_bytep>(big_endian.data() + y * row_samples);
    else
      rows[y] = const_cast<png_bytep>(spec.samples8.data() + y * row_samples);
  }
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

void write_png(const std::string& path, const PngWriteSpec& spec) {
  CBST_CHECK(spec.width > 0 && spec.height > 0, path, ": cannot write an empty image");
  CBST_CHECK(spec.bit_depth == 8 || spec.bit_depth == 16, path, ": bit depth must be 8 or 16");
  CBST_CHECK(spec.palette.size() <= 256, path, ": a palette holds at most 256 colours");
  CBST_CHECK(spec.palette.empty() || spec.bit_depth == 8, path, ": palette PNGs are 8-bit here");
  CBST_CHECK(spec.channels >= 1 && spec.channels <= 4, path, ": channels must be 1..4");
  const int channels = spec.palette.empty() ? spec.channels : 1;
  const size_t n = size_t(spec.width) * spec.height * channels;
  if (spec.bit_depth == 8)
    CBST_CHECK(spec.samples8.size() == n, path, ": expected ", n, " samples, got ", spec.samples8.size());
  else
    CBST_CHECK(spec.samples16.size() == n, path, ": expected ", n, " samples, got ", spec.samples16.size());
  std::vector<uint16_t> big_endian;
  if (spec.bit_depth == 16) {
    big_endian.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = spec.samples16[i];
      const uint8_t be[2] = {uint8_t(v >> 8), uint8_t(v & 0xff)};
      std::memcpy(&big_endian[i], be, 2);
    }
  }
  std::vector<uint8_t> out;
  std::vector<png_bytep> rows(spec.height);
  std::vector<png_color> palette(spec.palette.size());
  ErrorSink sink;
  if (!encode_png_raw(out, rows, palette, spec, big_endian, sink))
    CBST_THROW(path, ": PNG encoding failed: ", sink.message);
  write_file_atomic(path, out.data(), out.size());
}

}  // namespace cbst::data
