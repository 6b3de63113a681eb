// Image and label I/O: palette indices, 16-bit channel 0, writers, atomicity, bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/stat.h>
#include <zlib.h>

#include "data/image.h"
#include "engine/check.h"
#include "tests/data/data_test_util.h"
#include "tests/data/jpeg_fixtures.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;
using tu::TempDir;

namespace {

std::vector<uint8_t> ramp(size_t n, int mod) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i % mod);
  return v;
}

void expect_error_mentions(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected cbst::Error mentioning " << needle;
  } catch (const cbst::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(PngReader, PaletteLabelsYieldIndices) {
  TempDir dir;
  const std::string path = dir.file("labels/00001.png");
  const auto ids = ramp(37 * 23, 34);
  tu::write_palette_png(path, 37, 23, ids);
  const PngHeader h = read_png_header(path);
  EXPECT_EQ(h.color_type, 3);
  const RawLabels raw = read_label_values(path);
  ASSERT_EQ(raw.width, 37);
  ASSERT_EQ(raw.height, 23);
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(raw.values[i], ids[i]) << "pixel " << i;
  // The same file read as an image gives the palette colours (labelId 7 = road's purple).
  const Image rgb = read_image_rgb(path);
  const size_t k = 7;  // ids[7] == 7
  EXPECT_EQ(rgb.pixels[k * 3 + 0], 128);
  EXPECT_EQ(rgb.pixels[k * 3 + 1], 64);
  EXPECT_EQ(rgb.pixels[k * 3 + 2], 128);
}

TEST(PngReader, SixteenBitLabelsYieldChannelZero) {
  TempDir dir;
  const std::string path = dir.file("GT/LABELS/0000000.png");
  const int w = 11, h = 5;
  PngWriteSpec spec{.width = w, .height = h, .channels = 3, .bit_depth = 16};
  for (int i = 0; i < w * h; ++i) {
    spec.samples16.push_back(uint16_t(i % 23 + (i % 3) * 1000));  // class id (> 8 bits for some)
    spec.samples16.push_back(uint16_t(40000 + i));                // instance id
    spec.samples16.push_back(0);
  }
  write_png(path, spec);
  EXPECT_EQ(read_png_header(path).bit_depth, 16);
  const RawLabels raw = read_label_values(path);
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(raw.values[i], uint16_t(i % 23 + (i % 3) * 1000));
}

TEST(PngWriter, GreyAndRgbRoundTrip) {
  TempDir dir;
  const Image im = tu::pattern_image(31, 17, 3);
  write_png(dir.file("rgb.png"), im);
  const Image back = read_image_rgb(dir.file("rgb.png"));
  EXPECT_EQ(back.width, 31);
  EXPECT_EQ(back.height, 17);
  EXPECT_EQ(back.pixels, im.pixels);
  const Labels l{5, 3, {0, 1, 2, 3, 4, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14}};
  write_png_grey(dir.file("l.png"), l);
  const RawLabels raw = read_label_values(dir.file("l.png"));
  for (size_t i = 0; i < l.ids.size(); ++i) EXPECT_EQ(raw.values[i], l.ids[i]);
  EXPECT_EQ(read_image_rgb(dir.file("l.png")).pixels[5 * 3], 255);  // grey replicated to RGB
}

TEST(PngWriter, WritesAtomicallyWithoutLeavingTempFiles) {
  TempDir dir;
  const std::string path = dir.file("out/pred.png");
  tu::write_grey_png(path, 4, 4, ramp(16, 19));
  tu::write_grey_png(path, 4, 4, ramp(16, 7));  // overwrite in place
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    ++files;
    EXPECT_EQ(e.path().filename().string(), "pred.png");
  }
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(read_label_values(path).values[6], 6);
}

TEST(PngWriter, RefusesAMissingFolderWithAHint) {
  TempDir dir;
  expect_error_mentions([&] { tu::write_grey_png(dir.path() + "/nope/x.png", 2, 2, {0, 1, 2, 3}); },
                        "does not exist");
}

TEST(ImageReader, DecodesJpegThroughStb) {
  TempDir dir;
  const std::string path = dir.file("Images/Test/a.jpg");
  const Image im = Image::blank(16, 8, 3, 120);
  tu::write_jpeg(path, im);
  const Image back = read_image_rgb(path);
  EXPECT_EQ(back.width, 16);
  EXPECT_EQ(back.height, 8);
  EXPECT_NEAR(back.pixels[40], 120, 3);  // JPEG is lossy; a flat image stays within a few levels
}

TEST(ImageReader, SideBySidePanelPlacesImagesLeftToRight) {
  const Image a = Image::blank(4, 2, 3, 10), b = Image::blank(2, 1, 1, 200);
  const Image p = side_by_side({&a, &b}, 1);
  EXPECT_EQ(p.height, 2);
  EXPECT_EQ(p.width, 4 + 1 + 4);
  EXPECT_EQ(p.row(1)[0], 10);
  EXPECT_EQ(p.row(0)[4 * 3], 255);    // the gap
  EXPECT_EQ(p.row(1)[8 * 3 + 2], 200);  // b scaled to height 2, grey replicated
}

TEST(BadInput, MissingFileNamesTheFile) {
  expect_error_mentions([] { read_image_rgb("/nonexistent/dir/x.png"); }, "/nonexistent/dir/x.png");
  expect_error_mentions([] { read_label_values("/nonexistent/dir/y.png"); }, "/nonexistent/dir/y.png");
}

TEST(BadInput, TruncatedPngNamesTheFile) {
  TempDir dir;
  const std::string good = dir.file("good.png");
  tu::write_palette_png(good, 64, 64, ramp(64 * 64, 34));
  const std::vector<uint8_t> bytes = read_file_bytes(good);
  // Every truncation point, from inside the header to just before the end, must give an
  // error naming the file (a stride keeps the test fast).
  for (size_t cut = 1; cut < bytes.size(); cut += 1 + bytes.size() / 97) {
    const std::string bad = dir.file("cut_" + std::to_string(cut) + ".png");
    std::ofstream(bad, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(cut));
    expect_error_mentions([&] { read_label_values(bad); }, bad);
    expect_error_mentions([&] { read_image_rgb(bad); }, bad);
  }
}

TEST(BadInput, CorruptPngNamesTheFile) {
  TempDir dir;
  const std::string good = dir.file("good.png");
  write_png(good, tu::pattern_image(40, 30));
  std::vector<uint8_t> bytes = read_file_bytes(good);
  // Flip bytes in the IDAT payload and in the IHDR (CRC mismatch): errors, never crashes.
  for (size_t pos : {size_t(20), size_t(29), bytes.size() / 2, bytes.size() - 20}) {
    std::vector<uint8_t> bad_bytes = bytes;
    bad_bytes[pos] ^= 0x5a;
    const std::string bad = dir.file("bad_" + std::to_string(pos) + ".png");
    write_file_atomic(bad, bad_bytes.data(), bad_bytes.size());
    expect_error_mentions([&] { read_image_rgb(bad); }, bad);
  }
}

TEST(BadInput, NonImageFileNamesTheFile) {
  TempDir dir;
  const std::string path = dir.file("notes.png");
  tu::write_text(path, "this is not an image");
  expect_error_mentions([&] { read_image_rgb(path); }, path);
  const std::string empty = dir.file("empty.jpg");
  tu::write_text(empty, "");
  expect_error_mentions([&] { read_image_rgb(empty); }, empty);
}

namespace {

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put_be32(out, uint32_t(data.size()));
  std::vector<uint8_t> typed(type, type + 4);
  typed.insert(typed.end(), data.begin(), data.end());
  out.insert(out.end(), typed.begin(), typed.end());
  put_be32(out, uint32_t(crc32_z(0, typed.data(), typed.size())));
}

// A PNG whose IHDR (with valid CRCs) claims width x height 8-bit grey, followed by a small
// zlib stream of stored blocks and IEND: the header is believable, the data far too short.
std::vector<uint8_t> forged_png(uint32_t width, uint32_t height, size_t idat_bytes) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});
  put_chunk(png, "IHDR", ihdr);
  std::vector<uint8_t> idat = {0x78, 0x01};
  idat.resize(idat_bytes, 0);
  put_chunk(png, "IDAT", idat);
  put_chunk(png, "IEND", {});
  return png;
}

std::string write_bytes(const TempDir& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

}  // namespace

// An 848-byte label PNG used to allocate 2.2 GB (its header passed the old 2 GB cap), and a
// valid 46000 x 46000 label 6.4 GB. Both are refused from the header, before allocation.
TEST(BadInput, ForgedPngDimensionsAreRefusedBeforeDecoding) {
  TempDir dir;
  const std::string huge = write_bytes(dir, "huge.png", forged_png(46000, 46000, 800));
  expect_error_mentions([&] { read_label_values(huge); }, huge + ": corrupt or truncated PNG");
  expect_error_mentions([&] { read_label_values(huge); }, "refusing to decode a 46000x46000 image");
  // Under the pixel cap, but 64 M pixels cannot come out of 800 bytes of DEFLATE.
  const std::string dense = write_bytes(dir, "dense.png", forged_png(8000, 8000, 800));
  expect_error_mentions([&] { read_label_values(dense); }, "refusing to decode a 8000x8000 image");
  expect_error_mentions([&] { read_image_rgb(dense); }, "refusing to decode a 8000x8000 image");
  // A header that the data can plausibly fill goes on to libpng, which finds the data short.
  const std::string small = write_bytes(dir, "small.png", forged_png(40, 40, 30));
  expect_error_mentions([&] { read_label_values(small); }, small);
}

// stb_image over-read the heap on a 16-bit PGM, also when it was named .png; a 17-byte TGA
// made it allocate 1.3 GB. Only JPEG and BMP go to stb now, and only after a header check.
TEST(BadInput, PnmTgaAndOtherStbFormatsAreRefusedByContent) {
  TempDir dir;
  const std::string header = "P5\n400 400\n65535\n";
  std::vector<uint8_t> pgm16(header.begin(), header.end());
  pgm16.insert(pgm16.end(), 64, 0x12);  // far fewer than the 320000 bytes the header promises
  for (const std::string name : {"label16.pgm", "label16.png"}) {
    const std::string path = write_bytes(dir, name, pgm16);
    expect_error_mentions([&] { read_label_values(path); }, path + ": not a PNG, JPEG or BMP file");
    expect_error_mentions([&] { read_image_rgb(path); }, path + ": not a PNG, JPEG or BMP file");
  }
  // TGA: no magic, 17 bytes, a 65535 x 65535 true-colour header.
  const std::vector<uint8_t> tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 24};
  const std::string tga_path = write_bytes(dir, "x.tga", tga);
  expect_error_mentions([&] { read_image_rgb(tga_path); }, tga_path + ": not a PNG, JPEG or BMP file");
}

TEST(BadInput, JpegWithForgedDimensionsIsRefusedFromItsHeader) {
  TempDir dir;
  const std::string good = dir.file("a.jpg");
  tu::write_jpeg(good, Image::blank(16, 8, 3, 120));
  std::vector<uint8_t> bytes = read_file_bytes(good);
  // SOF0 (FF C0): length(2) precision(1) height(2) width(2).
  size_t sof = 0;
  for (size_t i = 2; i + 1 < bytes.size(); ++i)
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {
      sof = i;
      break;
    }
  ASSERT_GT(sof, 0u);
  bytes[sof + 5] = 0xEA;  // height 60000
  bytes[sof + 6] = 0x60;
  bytes[sof + 7] = 0xEA;  // width 60000
  bytes[sof + 8] = 0x60;
  const std::string bad = write_bytes(dir, "forged.jpg", bytes);
  expect_error_mentions([&] { read_image_rgb(bad); }, bad + ": refusing to decode a 60000x60000 JPEG");
}

// Found by fuzzing: stb_image 2.27 writes past its Huffman tables when a DHT segment
// declares more than 256 codes.
TEST(BadInput, JpegHuffmanTableWithTooManyCodesIsRefused) {
  TempDir dir;
  std::vector<uint8_t> jpeg = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 19, 0x00, 255, 255};
  jpeg.insert(jpeg.end(), 14, 0);
  jpeg.insert(jpeg.end(), {0xFF, 0xD9});
  const std::string path = write_bytes(dir, "dht.jpg", jpeg);
  expect_error_mentions([&] { read_image_rgb(path); }, path + ": corrupt JPEG: a Huffman table (DHT at byte 2) declares 510 codes");
  // One empty table, then 3 bytes left in the segment: stb starts another table there and
  // reads its counts from the bytes after the segment.
  std::vector<uint8_t> past = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 22, 0x00};
  past.insert(past.end(), 16, 0);
  past.insert(past.end(), {0x01, 0xFF, 0xFF});
  past.insert(past.end(), 14, 0xFF);
  past.insert(past.end(), {0xFF, 0xD9});
  const std::string past_path = write_bytes(dir, "dht_past.jpg", past);
  expect_error_mentions([&] { read_label_values(past_path); }, past_path + ": corrupt JPEG: a Huffman table");
}

// Found by fuzzing: stb_image 2.27 decodes a scan with a Huffman table that no DHT defined,
// reading uninitialised memory (with an earlier decode's leftovers, an index of -85).
TEST(BadInput, JpegScanWithAnUndefinedHuffmanTableIsRefused) {
  TempDir dir;
  using tu::JpegScan;
  using tu::tiny_jpeg;
  // The controls decode: a baseline scan with both its tables, and progressive scans naming
  // undefined tables they do not decode with (an AC table in a DC scan, any table in a DC
  // refinement), as libjpeg writes them.
  const std::string baseline = write_bytes(dir, "baseline.jpg", tiny_jpeg(0xC0, true, {JpegScan{}}));
  const std::string progressive =
      write_bytes(dir, "progressive.jpg",
                  tiny_jpeg(0xC2, false,
                            {JpegScan{.tables = 0x03, .spectral_end = 0},
                             JpegScan{.tables = 0x33, .spectral_end = 0, .approximation = 0x10}}));
  for (const std::string& path : {baseline, progressive}) {
    const Image im = read_image_rgb(path);
    ASSERT_EQ(im.width, 8) << path;
    ASSERT_EQ(im.height, 8) << path;
    for (size_t i = 0; i < im.pixels.size(); ++i) ASSERT_EQ(im.pixels[i], 128) << path << " byte " << i;
  }
  const std::string no_ac = write_bytes(dir, "no_ac.jpg", tiny_jpeg(0xC0, false, {JpegScan{}}));
  expect_error_mentions([&] { read_image_rgb(no_ac); },
                        no_ac + ": corrupt JPEG: the scan at byte 106 decodes with Huffman AC table 0, which no DHT before it defines");
  const std::string no_dc = write_bytes(dir, "no_dc.jpg", tiny_jpeg(0xC0, true, {JpegScan{.tables = 0x20}}));
  expect_error_mentions([&] { read_label_values(no_dc); }, no_dc + ": corrupt JPEG: the scan at byte 124 decodes with Huffman DC table 2");
  const std::string progressive_ac =
      write_bytes(dir, "progressive_ac.jpg",
                  tiny_jpeg(0xC2, false, {JpegScan{.spectral_end = 0}, JpegScan{.spectral_start = 1}}));
  expect_error_mentions([&] { read_image_rgb(progressive_ac); }, progressive_ac + ": corrupt JPEG: the scan at byte 117 decodes with Huffman AC table 0");
}

TEST(ImageReader, DecodesBmpThroughStb) {
  TempDir dir;
  const std::string path = dir.file("a.bmp");
  const Image im = tu::pattern_image(9, 7);
  ASSERT_TRUE(stbi_write_bmp(path.c_str(), im.width, im.height, 3, im.pixels.data()));
  const Image back = read_image_rgb(path);
  EXPECT_EQ(back.width, 9);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.pixels, im.pixels);
  const RawLabels raw = read_label_values(path);
  for (size_t i = 0; i < raw.values.size(); ++i) ASSERT_EQ(raw.values[i], im.pixels[i * 3]) << "channel 0 of pixel " << i;
}

TEST(PngWriter, WritesThroughSymlinksAndRefusesFifos) {
  TempDir dir;
  const std::string real = dir.file("real/pred.png");
  tu::write_text(real, "old");
  const std::string link = dir.file("pred_link.png");
  std::filesystem::create_symlink(real, link);
  tu::write_grey_png(link, 2, 2, {0, 1, 2, 3});
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(read_label_values(real).values, (std::vector<uint16_t>{0, 1, 2, 3}));
  const std::string fifo = dir.file("pipe.png");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_error_mentions([&] { tu::write_grey_png(fifo, 2, 2, {0, 1, 2, 3}); }, "'" + fifo + "': it is a FIFO");
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  expect_error_mentions([&] { read_label_values(fifo); }, fifo + ": is not a regular file");
  expect_error_mentions([&] { write_text_atomic(dir.path(), "x"); }, "it is a folder");
}
