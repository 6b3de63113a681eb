// Writes the seed corpus of every fuzz target (small valid files of each format) and the
// reproducers of the defects fixed in issue 11 (hostile files), built by the same fixture
// code as the tests (tests/weights/weights_fixtures.h), so no binary file is kept in the
// repository.
//
//   fuzz_make_seeds OUT_DIR    -> OUT_DIR/seeds/<target>/<name>, OUT_DIR/regressions/<target>/<name>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <zlib.h>

#include "data/image.h"
#include "tests/data/jpeg_fixtures.h"
#include "tests/weights/weights_fixtures.h"
#include "weights/safetensors.h"
#include "weights/tensor_map.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using namespace cbst;
using namespace cbst::weights::testing;

namespace {

fs::path g_out;

void write_to(const std::string& kind, const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = g_out / kind / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void seed(const std::string& target, const std::string& name, const Bytes& bytes) {
  write_to("seeds", target, name, bytes);
}

void regression(const std::string& target, const std::string& name, const Bytes& bytes) {
  write_to("regressions", target, name, bytes);
}

void seed_text(const std::string& target, const std::string& name, const std::string& text) {
  seed(target, name, Bytes(text.begin(), text.end()));
}

Bytes file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

std::vector<PickledTensor> tensors(const std::vector<std::string>& keys) {
  return {
      {.name = "conv.weight", .key = keys[0], .storage_numel = 6, .size = {2, 3}, .stride = {3, 1}},
      {.name = "conv.bias", .key = keys[1], .storage_numel = 2, .size = {2}, .stride = {1}, .as_parameter = true},
      {.name = "view", .key = keys[0], .storage_numel = 6, .offset = 1, .size = {2, 2}, .stride = {1, 2}},
      {.name = "steps", .storage_class = "LongStorage", .key = keys[2], .storage_numel = 1, .size = {}, .stride = {}},
  };
}

void weights_seeds() {
  const Bytes f6 = to_bytes(iota_floats(6, 1.f)), f2 = to_bytes(std::vector<float>{-1.f, -2.f});
  const Bytes i1 = to_bytes(std::vector<int64_t>{42});

  const Bytes zip_pickle = state_dict_pickle(tensors({"0", "1", "2"}), false);
  seed("pth_zip", "state_dict.pth", make_pth_zip(zip_pickle, {{"0", f6}, {"1", f2}, {"2", i1}}));
  seed("pickle", "state_dict.pkl", zip_pickle);
  seed("pickle", "plain_dict_long_memo.pkl", state_dict_pickle(tensors({"0", "1", "2"}), false, 300, true));

  const std::vector<std::string> keys = {"94081729898320", "94081729898400", "94081729898480"};
  const Bytes legacy_pickle = state_dict_pickle(tensors(keys), true);
  seed("pth_legacy", "state_dict.pth", make_pth_legacy(legacy_pickle, {{keys[0], f6}, {keys[1], f2}, {keys[2], i1}}, {6, 2, 1}));
  seed("pickle", "legacy_state_dict.pkl", legacy_pickle);

  weights::TensorMap map;
  map.insert("f32", Tensor::from_vector<float>({1.5f, -2.f, 3.25f, 7.f}, {2, 2}));
  map.insert("i64", Tensor::from_vector<int64_t>({-1, 2}, {2}));
  map.insert("u8", Tensor::from_vector<uint8_t>({0, 255, 7}, {3, 1}));
  map.insert("empty", Tensor::zeros({2, 0}, DType::f32));
  map.metadata["format"] = "pt";
  const Bytes st = weights::encode_safetensors(map);
  seed("safetensors", "every_dtype.safetensors", st);
  const uint64_t header_len = uint64_t(st[0]) | uint64_t(st[1]) << 8 | uint64_t(st[2]) << 16;
  seed("json", "safetensors_header.json", Bytes(st.begin() + 8, st.begin() + 8 + std::ptrdiff_t(header_len)));
  seed_text("json", "values.json", R"({"a":[1,-2.5e10,true,false,null,"\u00e9\ud83d\ude00\n"],"b":{"c":[[],{}]}})");

  const std::vector<MxArray> arrays = {
      {"arg:conv_weight", 0, {2, 1, 3}, to_bytes(iota_floats(6))},
      {"aux:bn_var", 1, {2}, to_bytes(std::vector<double>{0.25, 4.0})},
      {"arg:half", 2, {1}, to_bytes(std::vector<uint16_t>{0x3C00})},
  };
  for (int version = 0; version <= 3; ++version)
    seed("mxnet", "v" + std::to_string(version) + ".params", make_mxnet(arrays, version, version != 1));

  ProtoWriter net;
  net.string_field(1, "net");
  ProtoWriter conv;
  conv.string_field(1, "conv1");
  conv.string_field(2, "Convolution");
  conv.bytes_field(7, caffe_blob({2, 1, 2, 2}, iota_floats(8), false, true));
  conv.bytes_field(7, caffe_blob({2}, {0.5f, -0.5f}, false, false));
  net.bytes_field(100, conv.b);
  ProtoWriter v1;
  v1.string_field(4, "fc6");
  v1.int_field(5, 14);
  v1.bytes_field(6, caffe_blob({1, 1, 2, 3}, iota_floats(6), true, true));
  net.bytes_field(2, v1.b);
  seed("caffemodel", "v1_and_v2_layers.caffemodel", net.b);

  seed("zip_inflate", "pth.zip", make_pth_zip(zip_pickle, {{"0", f6}}));
  // Raw DEFLATE after a 4-byte declared size: one stored block, then a fixed-Huffman block
  // holding 'a' and a length-3 back-reference (distance 1).
  seed("zip_inflate", "stored.deflate", {5, 0, 0, 0, 0x01, 5, 0, 0xFA, 0xFF, 'h', 'e', 'l', 'l', 'o'});
  seed("zip_inflate", "fixed.deflate", {4, 0, 0, 0, 0x4B, 0x04, 0x02, 0x00});
}

void image_seeds() {
  const fs::path tmp = g_out / "tmp_images";
  fs::create_directories(tmp);
  data::Image im = data::Image::blank(12, 9, 3, 0);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 7);
  data::write_png((tmp / "rgb.png").string(), im);
  seed("image", "rgb.png", file_bytes(tmp / "rgb.png"));
  data::write_png_grey((tmp / "grey.png").string(), data::Labels{5, 3, {0, 1, 2, 3, 4, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14}});
  seed("image", "grey.png", file_bytes(tmp / "grey.png"));
  data::PngWriteSpec palette{.width = 4, .height = 2, .channels = 1, .bit_depth = 8};
  palette.samples8 = {0, 1, 2, 3, 3, 2, 1, 0};
  palette.palette = {{0, 0, 0}, {128, 64, 128}, {244, 35, 232}, {70, 70, 70}};
  data::write_png((tmp / "palette.png").string(), palette);
  seed("image", "palette.png", file_bytes(tmp / "palette.png"));
  data::PngWriteSpec sixteen{.width = 3, .height = 2, .channels = 2, .bit_depth = 16};
  sixteen.samples16 = {1, 40000, 2, 40001, 3, 40002, 1000, 9, 2000, 8, 3000, 7};
  data::write_png((tmp / "sixteen.png").string(), sixteen);
  seed("image", "sixteen.png", file_bytes(tmp / "sixteen.png"));
  stbi_write_jpg((tmp / "a.jpg").string().c_str(), im.width, im.height, 3, im.pixels.data(), 90);
  seed("image", "a.jpg", file_bytes(tmp / "a.jpg"));
  // stb_image_write writes baseline JPEGs only: a hand-made progressive one, a DC scan and a
  // DC refinement.
  using data::test_util::JpegScan;
  seed("image", "progressive.jpg",
       data::test_util::tiny_jpeg(0xC2, false, {JpegScan{.tables = 0x00, .spectral_end = 0},
                                                JpegScan{.tables = 0x00, .spectral_end = 0, .approximation = 0x10}}));
  stbi_write_bmp((tmp / "a.bmp").string().c_str(), im.width, im.height, 3, im.pixels.data());
  seed("image", "a.bmp", file_bytes(tmp / "a.bmp"));
  fs::remove_all(tmp);
}

void config_seeds() {
  seed_text("config", "adapt.toml",
            "[adapt]\nsource = \"gta5=/data/GTA5\"\ntarget = \"cityscapes=/data/cityscapes\"\nmodel = \"small-fcn\"\n"
            "method = \"cbst-sp\"\nportion = 0.2\nrounds = 3\nflip = true\nscales = [0.5, 0.75, 1.0]\n# comment\n");
  seed_text("config", "train.toml", "[train]\ndata='gta5=/d'\nlr=1e-3\n'quoted key'=\"x\"\n[train.sub]\na=1\n");
}

void put_be32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

void put_png_chunk(Bytes& out, const char* type, const Bytes& data) {
  put_be32(out, uint32_t(data.size()));
  Bytes typed(type, type + 4);
  typed.insert(typed.end(), data.begin(), data.end());
  out.insert(out.end(), typed.begin(), typed.end());
  put_be32(out, uint32_t(crc32_z(0, typed.data(), typed.size())));
}

// An 8-bit grey PNG whose header (with valid CRCs) claims width x height over a short IDAT.
Bytes forged_png(uint32_t width, uint32_t height, size_t idat_bytes) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});
  put_png_chunk(png, "IHDR", ihdr);
  Bytes idat = {0x78, 0x01};
  idat.resize(idat_bytes, 0);
  put_png_chunk(png, "IDAT", idat);
  put_png_chunk(png, "IEND", {});
  return png;
}

// SOI, one DHT whose 16 counts add up to 510 (the values are missing), EOI.
Bytes jpeg_with_oversized_dht() {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 19, 0x00, 255, 255};
  b.insert(b.end(), 14, 0);
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

// A DHT of one empty table whose declared length leaves 3 bytes over: stb starts another
// table there and takes its counts from the bytes after the segment (all 0xFF).
Bytes jpeg_with_dht_past_its_segment() {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 22, 0x00};
  b.insert(b.end(), 16, 0);
  b.insert(b.end(), {0x01, 0xFF, 0xFF});
  b.insert(b.end(), 14, 0xFF);
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

Bytes pickle_of(const Bytes& body) {
  Bytes b{0x80, 0x02};
  b.insert(b.end(), body.begin(), body.end());
  b.push_back('.');
  return b;
}

void regressions() {
  // Defect 2: a million nested TUPLE1, a 200k-deep dict.
  regression("pickle", "nested_tuples.pkl", pickle_of([] {
               Bytes b{'N'};
               b.insert(b.end(), 1'000'000, 0x85);
               return b;
             }()));
  regression("pickle", "nested_dicts.pkl", pickle_of([] {
               Bytes b{'}'};
               for (int i = 0; i < 200'000; ++i) b.insert(b.end(), {'N', '}'});
               b.insert(b.end(), 200'000, 's');
               return b;
             }()));
  // Defect 5: torch.Size copies of a 50k-slot list; 1 M MARKs; a NUL in a refused name.
  PickleWriter copies;
  copies.proto();
  copies.op('N');
  copies.put();
  copies.op(']');
  copies.mark();
  for (int i = 0; i < 50'000; ++i) copies.get(0);
  copies.op('e');
  copies.put();
  copies.mark();
  copies.global("torch", "Size");
  for (int i = 0; i < 2000; ++i) {
    copies.get(2);
    copies.get(1);
    copies.op(0x85);
    copies.op('R');
  }
  copies.tuple();
  copies.stop();
  regression("pickle", "size_copies.pkl", copies.w.b);
  regression("pickle", "marks.pkl", pickle_of(Bytes(1'000'000, '(')));
  const std::string nul_global = std::string("cos\0evil\nsystem\n", 16);
  regression("pickle", "nul_global.pkl", pickle_of(Bytes(nul_global.begin(), nul_global.end())));

  // Defect 1: a zero-stride view of 2^62 + 1 elements of one stored float.
  const Bytes one_float = to_bytes(std::vector<float>{7.f});
  const PickledTensor wrap{.name = "w", .key = "0", .storage_numel = 1, .size = {(int64_t(1) << 62) + 1}, .stride = {0}};
  regression("pth_zip", "zero_stride_wrap.pth", make_pth_zip(state_dict_pickle({wrap}, false), {{"0", one_float}}));
  const PickledTensor expand{.name = "w", .key = "0", .storage_numel = 1, .size = {int64_t(1) << 20, int64_t(1) << 20}, .stride = {0, 0}};
  regression("pth_zip", "zero_stride_2e40.pth", make_pth_zip(state_dict_pickle({expand}, false), {{"0", one_float}}));
  PickledTensor legacy_wrap = wrap;
  legacy_wrap.key = "1000";
  regression("pth_legacy", "zero_stride_wrap.pth", make_pth_legacy(state_dict_pickle({legacy_wrap}, true), {{"1000", one_float}}, {1}));
  // Defect 4: zero-size tensors with huge other dimensions.
  const PickledTensor empty{.name = "e", .key = "0", .storage_numel = 0, .size = {int64_t(1) << 62, int64_t(1) << 62, 0}, .stride = {0, 0, 1}};
  regression("pth_zip", "empty_huge_dims.pth", make_pth_zip(state_dict_pickle({empty}, false), {{"0", {}}}));
  const std::string big = std::to_string(int64_t(1) << 62);
  const std::string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0," + big + "," + big + "],\"data_offsets\":[0,0]}}";
  ByteWriter st;
  st.u64(header.size());
  st.str(header);
  regression("safetensors", "empty_huge_dims.safetensors", st.b);
  regression("mxnet", "empty_huge_dims.params", make_mxnet({{"arg:e", 0, {0, int64_t(1) << 62, int64_t(1) << 62}, {}}}, 2));
  ProtoWriter net;
  ProtoWriter layer;
  layer.string_field(1, "empty");
  layer.string_field(2, "Convolution");
  layer.bytes_field(7, caffe_blob({int64_t(1) << 62, 0, int64_t(1) << 62}, {}, false, true));
  net.bytes_field(100, layer.b);
  regression("caffemodel", "empty_huge_dims.caffemodel", net.b);
  // Defect 5: a header of millions of tiny JSON values.
  std::string values = "{\"a\":[";
  for (int i = 0; i < (1 << 21) + 10; ++i) values += "0,";
  values += "0]}";
  regression("json", "tiny_values.json", Bytes(values.begin(), values.end()));
  // Defect 3 and 5: a 16-bit PGM (also named .png), a 17-byte TGA, forged PNG and JPEG sizes.
  const std::string pgm = std::string("P5\n400 400\n65535\n") + std::string(64, '\x12');
  regression("image", "pgm16.png", Bytes(pgm.begin(), pgm.end()));
  regression("image", "tga17.tga", {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 24});
  regression("image", "forged_46000.png", forged_png(46000, 46000, 800));
  regression("image", "forged_8000.png", forged_png(8000, 8000, 800));
  // Found by fuzz_image: a DHT declaring 510 codes overflowed stb 2.27's Huffman tables.
  regression("image", "dht_510_codes.jpg", jpeg_with_oversized_dht());
  regression("image", "dht_past_segment.jpg", jpeg_with_dht_past_its_segment());
  // Found by fuzz_image: a scan decoded with an AC table no DHT defined (uninitialised memory).
  regression("image", "undefined_huffman_table.jpg", data::test_util::tiny_jpeg(0xC0, false, {data::test_util::JpegScan{}}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds OUT_DIR\n";
    return 2;
  }
  g_out = argv[1];
  try {
    weights_seeds();
    image_seeds();
    config_seeds();
    regressions();
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
