#include "weights/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>
#include <unistd.h>

#include "weights/load_weights.h"
#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

// u64 header length + header + data, with the length computed (or given, to lie).
Bytes with_header(const std::string& header, size_t data_bytes, int64_t length = -1) {
  testing::ByteWriter w;
  w.u64(length < 0 ? header.size() : uint64_t(length));
  w.str(header);
  w.b.resize(w.b.size() + data_bytes, 0);
  return w.b;
}

TensorMap read(const Bytes& b) {
  MemorySource src(b);
  return read_safetensors(src);
}

std::string error_of(const Bytes& b) { return ::cbst::testing::error_of([&] { read(b); }); }

TensorMap every_dtype() {
  TensorMap m;
  m.insert("f32", Tensor::from_vector<float>({1.5f, -2.f, 3.25f, 1e-30f, 7.f, 8.f}, {2, 3}));
  m.insert("f64", Tensor::from_vector<double>({1.0 / 3.0, -1e300}, {2}));
  m.insert("u8", Tensor::from_vector<uint8_t>({0, 255, 7}, {3, 1}));
  m.insert("i32", Tensor::from_vector<int32_t>({-1, INT32_MAX, INT32_MIN, 0}, {2, 2}));
  m.insert("i64", Tensor::from_vector<int64_t>({INT64_MIN, INT64_MAX, 42}, {3}));
  m.insert("scalar", Tensor::scalar<float>(2.5f));
  m.insert("empty", Tensor::zeros({2, 0}, DType::f32));
  return m;
}

void expect_same(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    const Tensor& u = b.at(name);
    EXPECT_EQ(t.dtype(), u.dtype()) << name;
    EXPECT_EQ(t.shape(), u.shape()) << name;
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    if (t.numel()) {
      EXPECT_EQ(0, std::memcmp(t.contiguous().raw_data(), u.raw_data(), t.nbytes())) << name;
    }
  }
}

TEST(Safetensors, RoundTripKeepsEveryDtypeShapeAndValue) {
  TensorMap m = every_dtype();
  m.metadata["format"] = "pt";
  m.metadata["note"] = "quote \" backslash \\ newline \n unicode \xc3\xa9";
  const TensorMap back = read(encode_safetensors(m));
  expect_same(m, back);
  EXPECT_EQ(back.metadata, m.metadata);
  EXPECT_EQ(back.format, "safetensors");
}

TEST(Safetensors, WriterMatchesReferenceLayout) {
  TensorMap m;
  m.insert("a", Tensor::from_vector<uint8_t>({1}, {1}));
  m.insert("z", Tensor::from_vector<int64_t>({2}, {1}));
  const Bytes b = encode_safetensors(m);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header is space-padded to a multiple of 8";
  const std::string header(b.begin() + 8, b.begin() + 8 + std::ptrdiff_t(n));
  // Descending alignment, then name: the 8-byte 'z' precedes the 1-byte 'a'.
  EXPECT_LT(header.find("\"z\""), header.find("\"a\""));
  EXPECT_NE(header.find("\"data_offsets\":[0,8]"), std::string::npos);
}

TEST(Safetensors, NonContiguousTensorsAreWrittenContiguous) {
  TensorMap m;
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  m.insert("t", t.transpose(0, 1));
  const TensorMap back = read(encode_safetensors(m));
  EXPECT_EQ(back.at("t").shape(), (Shape{3, 2}));
  EXPECT_EQ(back.at("t").to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Safetensors, AtomicWriteLeavesOnlyTheFinalFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("cbst_st_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ckpt.safetensors").string();
  { std::ofstream(path) << "old contents"; }
  save_checkpoint(path, every_dtype());
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "ckpt.safetensors");
  }
  EXPECT_EQ(files, 1u);
  expect_same(every_dtype(), load_checkpoint(path));
  expect_same(every_dtype(), load_weights(path));
  std::filesystem::remove_all(dir);
}

// The writer renamed over whatever was there: a symbolic link was replaced by a file and a
// FIFO became a regular file. Links are now followed; other non-regular files refused.
TEST(Safetensors, AtomicWriteFollowsLinksAndRefusesFifosAndFolders) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("cbst_st_links_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "real");
  const fs::path target = dir / "real" / "ckpt.safetensors";
  { std::ofstream(target) << "old"; }
  fs::create_symlink("real/ckpt.safetensors", dir / "latest.safetensors");
  save_checkpoint((dir / "latest.safetensors").string(), every_dtype());
  EXPECT_TRUE(fs::is_symlink(dir / "latest.safetensors")) << "the link stays a link";
  expect_same(every_dtype(), load_checkpoint(target.string()));
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "real")) ++files;
  EXPECT_EQ(files, 1u) << "no temporary is left beside the target";

  const fs::path fifo = dir / "pipe.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  std::string e = ::cbst::testing::error_of([&] { save_checkpoint(fifo.string(), every_dtype()); });
  EXPECT_NE(e.find("pipe.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("it is a FIFO"), std::string::npos) << e;
  EXPECT_TRUE(fs::is_fifo(fifo)) << "the FIFO is left alone";
  fs::create_symlink("pipe.safetensors", dir / "to_pipe.safetensors");
  e = ::cbst::testing::error_of([&] { save_checkpoint((dir / "to_pipe.safetensors").string(), every_dtype()); });
  EXPECT_NE(e.find("a FIFO"), std::string::npos) << e;
  e = ::cbst::testing::error_of([&] { save_checkpoint((dir / "real").string(), every_dtype()); });
  EXPECT_NE(e.find("it is a folder"), std::string::npos) << e;
  e = ::cbst::testing::error_of([&] { load_weights(fifo.string()); });
  EXPECT_NE(e.find("not a regular file"), std::string::npos) << "reading a FIFO fails at once: " << e;
  fs::remove_all(dir);
}

TEST(Safetensors, WriteIntoMissingFolderFailsWithoutLeavingFiles) {
  EXPECT_THROW(write_safetensors("/nonexistent_cbst_dir/x.safetensors", every_dtype()), Error);
}

TEST(Safetensors, HalfAndBfloat16LoadAsF32) {
  // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal), inf
  const std::vector<uint16_t> half = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x4049};
  std::string header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[10,16]}}";
  Bytes file = with_header(header, 0);
  const Bytes hb = testing::to_bytes(half), bb = testing::to_bytes(bf16);
  file.insert(file.end(), hb.begin(), hb.end());
  file.insert(file.end(), bb.begin(), bb.end());
  const TensorMap m = read(file);
  EXPECT_EQ(m.at("h").dtype(), DType::f32);
  const auto h = m.at("h").to_vector<float>();
  EXPECT_EQ(h[0], 1.f);
  EXPECT_EQ(h[1], -2.f);
  EXPECT_EQ(h[2], 65504.f);
  EXPECT_EQ(h[3], std::ldexp(1.f, -24));
  EXPECT_TRUE(std::isinf(h[4]));
  const auto b = m.at("b").to_vector<float>();
  EXPECT_EQ(b[0], 1.f);
  EXPECT_EQ(b[1], -2.f);
  EXPECT_EQ(b[2], 3.140625f);
}

// The inline vectors of the reference implementation's tests (safetensors/src/tensor.rs).
TEST(Safetensors, ReferenceVectorsValidAndInvalid) {
  const std::string valid = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  const TensorMap m = read(with_header(valid, 16));
  EXPECT_EQ(m.at("test").shape(), (Shape{2, 2}));
  EXPECT_EQ(m.at("test").dtype(), DType::i32);

  Bytes polyglot = with_header(valid, 16);
  const std::string extra = "extra_bogus_data_for_polyglot_file";
  polyglot.insert(polyglot.end(), extra.begin(), extra.end());
  EXPECT_NE(error_of(polyglot).find("trailing bytes"), std::string::npos);
  EXPECT_NE(error_of(with_header(valid, 14)).find("truncated"), std::string::npos);

  const std::string bad_span = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,4]}}";
  EXPECT_NE(error_of(with_header(bad_span, 4)).find("needs 16 bytes"), std::string::npos);

  EXPECT_NE(error_of(bytes_of(std::string("<\0\0\0\0\xff\xff\xff", 8))).find("exceeds the limit"), std::string::npos);
  EXPECT_NE(error_of({}).find("too small"), std::string::npos);
  EXPECT_NE(error_of(bytes_of(std::string("<\0\0\0\0\0\0\0", 8))).find("does not fit"), std::string::npos);
  EXPECT_NE(error_of(bytes_of(std::string("\x01\0\0\0\0\0\0\0{", 9))).find("JSON"), std::string::npos);
  EXPECT_NE(error_of(bytes_of(std::string("\x01\0\0\0\0\0\0\0\xff", 9))).find("invalid JSON at byte 1"), std::string::npos);
  EXPECT_NE(error_of(bytes_of(std::string("\x05\0\0\0\0\0\0\0{\"\xff\":", 13))).find("UTF-8"), std::string::npos);

  EXPECT_EQ(read(bytes_of(std::string("\x06\0\0\0\0\0\0\0{}\x0d\x20\x09\x0a", 14))).size(), 0u);
  EXPECT_EQ(read(bytes_of(std::string("\x06\0\0\0\0\0\0\0\x09\x0a{}\x0d\x20", 14))).size(), 0u);
  const std::string zero = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0,0]}}";
  EXPECT_EQ(read(with_header(zero, 0)).at("test").shape(), (Shape{2, 0}));
}

TEST(Safetensors, RejectsMalformedHeaders) {
  auto err = [](const std::string& header, size_t data) { return error_of(with_header(header, data)); };
  const std::string t = "\"dtype\":\"F32\",\"shape\":[1]";
  EXPECT_NE(err("{\"a\":{" + t + ",\"data_offsets\":[0,4]},\"a\":{" + t + ",\"data_offsets\":[4,8]}}", 8).find("duplicate"),
            std::string::npos);
  EXPECT_NE(err("{\"a\":{" + t + ",\"data_offsets\":[0,4]},\"b\":{" + t + ",\"data_offsets\":[0,4]}}", 4).find("tile"),
            std::string::npos)
      << "overlap";
  EXPECT_NE(err("{\"a\":{" + t + ",\"data_offsets\":[4,8]}}", 8).find("tile"), std::string::npos) << "hole";
  EXPECT_NE(err("{\"a\":{" + t + ",\"data_offsets\":[0,4000000000]}}", 4).find("needs 4 bytes"), std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4).find("overflows"),
            std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4).find("unknown dtype"), std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1).find("does not support"),
            std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4).find("non-negative"), std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4).find("non-negative"), std::string::npos);
  EXPECT_NE(err("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4).find("lacks"), std::string::npos);
  EXPECT_NE(err("{\"__metadata__\":{\"k\":1}}", 0).find("not a string"), std::string::npos);
  EXPECT_NE(err("[1,2]", 0).find("not an object"), std::string::npos);
  EXPECT_NE(err(std::string(200, '[') + std::string(200, ']'), 0).find("nesting"), std::string::npos);
}

// The header alone: the metadata of a file (a checkpoint's model name) without reading a
// tensor, with the whole reader's header checks.
TEST(Safetensors, MetadataAloneReadsTheHeaderOnly) {
  TensorMap m = every_dtype();
  m.metadata["model"] = "small-deeplabv3plus";
  m.metadata["num_classes"] = "19";
  const Bytes bytes = encode_safetensors(m);
  MemorySource whole(bytes);
  EXPECT_EQ(read_safetensors_metadata(whole), m.metadata);
  // The tensors' bytes are never read: the header alone, with the data cut off, gives the same.
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const Bytes header_only(bytes.begin(), bytes.begin() + 8 + std::ptrdiff_t(n));
  MemorySource head(header_only);
  EXPECT_EQ(read_safetensors_metadata(head), m.metadata);
  EXPECT_THROW(read(header_only), Error) << "the whole reader needs the data";
  auto err = [](const Bytes& b) {
    return ::cbst::testing::error_of([&] {
      MemorySource src(b);
      read_safetensors_metadata(src);
    });
  };
  EXPECT_NE(err(with_header("{\"__metadata__\":{\"k\":1}}", 0)).find("not a string"), std::string::npos);
  EXPECT_NE(err(with_header("[1,2]", 0)).find("not an object"), std::string::npos);
  EXPECT_NE(err(with_header("{}", 0, 1000)).find("does not fit"), std::string::npos);
  EXPECT_NE(err(Bytes{1, 2, 3}).find("too small"), std::string::npos);
  EXPECT_TRUE(read_safetensors_metadata(MemorySource(with_header("{}", 0))).empty());
}

// A zero dimension makes a tensor empty whatever its other dimensions; computing their
// product or strides used to overflow int64 (undefined behaviour; UBSan reports it).
TEST(Safetensors, EmptyTensorsWithHugeDimensionsLoadEmpty) {
  const std::string big = std::to_string(int64_t(1) << 62);
  for (const std::string& shape : {"[0," + big + "," + big + "]", "[" + big + "," + big + ",0]"}) {
    const TensorMap m = read(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,0]}}", 0));
    EXPECT_EQ(m.at("a").numel(), 0) << shape;
    EXPECT_EQ(m.at("a").shape()[1], int64_t(1) << 62) << shape;
  }
}

// "[0,0,0,...]" costs two header bytes per value and ~90 bytes of parsed value: a 98 MB
// header took more than 4 GB. The value count is capped.
TEST(Safetensors, AHeaderOfMillionsOfTinyValuesIsRefused) {
  std::string header = "{\"a\":[";
  for (int i = 0; i < (1 << 21) + 10; ++i) header += "0,";
  header += "0]}";
  const std::string e = error_of(with_header(header, 0));
  EXPECT_NE(e.find("more than 2097152 values"), std::string::npos) << e.substr(0, 300);
}

TEST(Safetensors, EveryTruncationIsAnErrorNeverACrash) {
  const Bytes file = encode_safetensors(every_dtype());
  const size_t errors = testing::count_prefix_errors(file, [](const ByteSource& s) { read_safetensors(s); });
  EXPECT_EQ(errors, file.size());
}

TEST(Safetensors, FlippedBytesAreErrorsOrLoadCleanly) {
  // A flip in the data buffer changes values (nothing to check against); a flip in the
  // header must give an error or a valid map, never a crash or a huge allocation.
  const Bytes file = encode_safetensors(every_dtype());
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  size_t errors = 0;
  for (size_t i = 0; i < 8 + n; ++i) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      Bytes bad = file;
      bad[i] ^= mask;
      try {
        read(bad);
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 8 + n);  // most header flips are caught
}

}  // namespace
}  // namespace cbst::weights
