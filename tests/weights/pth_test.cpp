// PyTorch checkpoints: zip and legacy layouts, views and dtypes, and hostile variants.
#include "weights/pth.h"

#include <gtest/gtest.h>

#include <new>

#include "weights/load_weights.h"
#include "weights/zip_reader.h"
#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;
using testing::PickledTensor;

TensorMap read(const Bytes& b) {
  MemorySource src(b, "test.pth");
  return load_weights(src);
}

std::string error_of(const Bytes& b) { return ::cbst::testing::error_of([&] { read(b); }); }

// A BatchNorm-like state_dict: f32 weight (2,3), a parameter, and a 0-d i64 counter.
struct Fixture {
  std::vector<PickledTensor> tensors;
  std::map<std::string, Bytes> storages;
};

Fixture small_state_dict() {
  Fixture f;
  f.tensors = {
      {.name = "conv.weight", .key = "0", .storage_numel = 6, .size = {2, 3}, .stride = {3, 1}},
      {.name = "conv.bias", .key = "1", .storage_numel = 2, .size = {2}, .stride = {1}, .as_parameter = true},
      {.name = "bn.num_batches_tracked", .storage_class = "LongStorage", .key = "2", .storage_numel = 1, .size = {}, .stride = {}},
  };
  f.storages["0"] = testing::to_bytes(testing::iota_floats(6, 1.f));
  f.storages["1"] = testing::to_bytes(std::vector<float>{-1.f, -2.f});
  f.storages["2"] = testing::to_bytes(std::vector<int64_t>{42});
  return f;
}

Bytes small_zip(const std::string& folder = "archive") {
  const Fixture f = small_state_dict();
  return testing::make_pth_zip(testing::state_dict_pickle(f.tensors, false), f.storages, folder);
}

Bytes small_legacy() {
  Fixture f = small_state_dict();
  // Legacy keys are the storages' C pointers printed as decimal.
  const std::vector<std::string> keys = {"94081729898320", "94081729898400", "94081729898480"};
  for (size_t i = 0; i < 3; ++i) f.tensors[i].key = keys[i];
  return testing::make_pth_legacy(testing::state_dict_pickle(f.tensors, true),
                                  {{keys[0], f.storages["0"]}, {keys[1], f.storages["1"]}, {keys[2], f.storages["2"]}},
                                  {6, 2, 1});
}

void expect_small_state_dict(const TensorMap& m) {
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"conv.weight", "conv.bias", "bn.num_batches_tracked"}));
  EXPECT_EQ(m.at("conv.weight").shape(), (Shape{2, 3}));
  EXPECT_EQ(m.at("conv.weight").to_vector<float>(), testing::iota_floats(6, 1.f));
  EXPECT_EQ(m.at("conv.bias").to_vector<float>(), (std::vector<float>{-1.f, -2.f}));
  EXPECT_EQ(m.at("bn.num_batches_tracked").dtype(), DType::i64);
  EXPECT_EQ(m.at("bn.num_batches_tracked").shape(), Shape{});
  EXPECT_EQ(m.at("bn.num_batches_tracked").item<int64_t>(), 42);
}

TEST(PthZip, ReadsAStateDictUnderAnyTopFolder) {
  for (const std::string folder : {"archive", "vgg16-397923af", "test"}) {
    const TensorMap m = read(small_zip(folder));
    expect_small_state_dict(m);
    EXPECT_EQ(m.format, "pytorch-zip");
  }
}

TEST(PthZip, DataRecordsAre64ByteAligned) {
  const Bytes file = small_zip();
  MemorySource src(file);
  ZipArchive zip(src);
  for (const ZipEntry& e : zip.entries()) EXPECT_EQ(zip.data_offset(e) % 64, 0u) << e.name;
}

TEST(PthZip, HonoursStridesOffsetsAndSharedStorages) {
  // Fortran-order (2,3,4) with stride (1,2,6), and two views into one storage.
  std::vector<int64_t> storage(24);
  for (int i = 0; i < 24; ++i) storage[size_t(i)] = i;
  const std::vector<PickledTensor> tensors = {
      {.name = "fortran", .storage_class = "LongStorage", .key = "0", .storage_numel = 24, .size = {2, 3, 4}, .stride = {1, 2, 6}},
      {.name = "head", .storage_class = "LongStorage", .key = "0", .storage_numel = 24, .offset = 0, .size = {2}, .stride = {1}},
      {.name = "tail", .storage_class = "LongStorage", .key = "0", .storage_numel = 24, .offset = 20, .size = {2, 2}, .stride = {1, 2}},
  };
  const TensorMap m = read(testing::make_pth_zip(testing::state_dict_pickle(tensors, false, 300),
                                                 {{"0", testing::to_bytes(storage)}}));
  const auto f = m.at("fortran").to_vector<int64_t>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(f[size_t(i * 12 + j * 4 + k)], i + 2 * j + 6 * k);
  EXPECT_EQ(m.at("head").to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(m.at("tail").to_vector<int64_t>(), (std::vector<int64_t>{20, 22, 21, 23}));
}

TEST(PthZip, ConvertsStorageTypesToEngineTypes) {
  const std::vector<PickledTensor> tensors = {
      {.name = "half", .storage_class = "HalfStorage", .key = "0", .storage_numel = 2, .size = {2}, .stride = {1}},
      {.name = "bf16", .storage_class = "BFloat16Storage", .key = "1", .storage_numel = 1, .size = {1}, .stride = {1}},
      {.name = "double", .storage_class = "DoubleStorage", .key = "2", .storage_numel = 1, .size = {1}, .stride = {1}},
      {.name = "int", .storage_class = "IntStorage", .key = "3", .storage_numel = 1, .size = {1}, .stride = {1}},
      {.name = "byte", .storage_class = "ByteStorage", .key = "4", .storage_numel = 1, .size = {1}, .stride = {1}},
      {.name = "untyped", .storage_class = "UntypedStorage", .key = "5", .storage_numel = 3, .size = {3}, .stride = {1}},
      {.name = "bool", .storage_class = "BoolStorage", .key = "6", .storage_numel = 1, .size = {1}, .stride = {1}},
  };
  std::map<std::string, Bytes> storages = {
      {"0", testing::to_bytes(std::vector<uint16_t>{0x3C00, 0x3800})},
      {"1", testing::to_bytes(std::vector<uint16_t>{0x4000})},
      {"2", testing::to_bytes(std::vector<double>{0.1})},
      {"3", testing::to_bytes(std::vector<int32_t>{-7})},
      {"4", {200}},
      {"5", {1, 2, 3}},
      {"6", {1}},
  };
  const TensorMap m = read(testing::make_pth_zip(testing::state_dict_pickle(tensors, false), storages));
  EXPECT_EQ(m.at("half").to_vector<float>(), (std::vector<float>{1.f, 0.5f}));
  EXPECT_EQ(m.at("bf16").to_vector<float>(), (std::vector<float>{2.f}));
  EXPECT_EQ(m.at("double").to_vector<double>(), (std::vector<double>{0.1}));
  EXPECT_EQ(m.at("int").to_vector<int32_t>(), (std::vector<int32_t>{-7}));
  EXPECT_EQ(m.at("byte").to_vector<uint8_t>(), (std::vector<uint8_t>{200}));
  EXPECT_EQ(m.at("untyped").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(m.at("bool").dtype(), DType::u8);
}

TEST(PthZip, BigEndianRecordsAreSwapped) {
  const std::vector<PickledTensor> tensors = {{.name = "x", .key = "0", .storage_numel = 1, .size = {1}, .stride = {1}}};
  const Bytes pickle = testing::state_dict_pickle(tensors, false);
  const Bytes file = testing::make_zip({{"a/data.pkl", pickle, {}},
                                        {"a/byteorder", {'b', 'i', 'g'}, {}},
                                        {"a/data/0", {0x3F, 0x80, 0x00, 0x00}, {}}});
  EXPECT_EQ(read(file).at("x").item<float>(), 1.f);
}

TEST(PthZip, UnwrapsNestedCheckpointsAndNamesNestedDicts) {
  // {"epoch": 3, "state_dict": OrderedDict(w=...)} -> "w";  {"a": {"b": t}, "c": [t]} -> "a.b", "c.0"
  testing::PickleWriter p;
  p.proto();
  p.op('}');
  p.mark();
  p.str("epoch");
  p.integer(3);
  p.str("state_dict");
  p.op('}');
  p.mark();
  p.str("w");
  p.global("torch._utils", "_rebuild_tensor_v2");
  p.mark();
  p.mark();
  p.str("storage");
  p.global("torch", "FloatStorage");
  p.str("0");
  p.str("cuda:0");
  p.integer(1);
  p.tuple();
  p.op('Q');
  p.integer(0);
  p.int_tuple({1});
  p.int_tuple({1});
  p.op(0x89);
  p.op('N');
  p.tuple();
  p.op('R');
  p.op('u');
  p.op('u');
  p.stop();
  const TensorMap m = read(testing::make_pth_zip(p.w.b, {{"0", testing::to_bytes(std::vector<float>{5.f})}}));
  EXPECT_EQ(m.names(), (std::vector<std::string>{"w"}));
}

// Issue 12: pytorch-fcn's trainer checkpoints hold best_mean_iu as a numpy.float64, which
// torch.save (protocol 2) writes as numpy.dtype('f8') + BUILD, _codecs.encode of its bytes,
// and numpy's scalar(); the opcodes below are the ones Python emits for it. The state_dict is
// read and the scalar ignored; numpy's other globals stay refused.
void numpy_float64(testing::PickleWriter& p, const std::string& module) {
  p.global(module, "scalar");
  p.global("numpy", "dtype");
  p.str("f8");
  p.op(0x89);  // NEWFALSE
  p.op(0x88);  // NEWTRUE
  p.op(0x87);  // TUPLE3
  p.op('R');
  p.mark();  // dtype state: (3, '<', None, None, None, -1, -1, 0)
  p.integer(3);
  p.str("<");
  p.op('N');
  p.op('N');
  p.op('N');
  p.integer(-1);
  p.integer(-1);
  p.integer(0);
  p.tuple();
  p.op('b');  // BUILD
  p.global("_codecs", "encode");
  p.str(std::string("\0\0\0\0\0\0\xc3\xa0?", 9));  // 0.5 as latin-1 text
  p.str("latin1");
  p.op(0x86);  // TUPLE2
  p.op('R');
  p.op(0x86);
  p.op('R');
}

TEST(PthZip, TrainerCheckpointsWithNumpyScalarsLoadTheirStateDict) {
  for (const std::string module : {"numpy.core.multiarray", "numpy._core.multiarray"}) {
    testing::PickleWriter p;
    p.proto();
    p.op('}');
    p.mark();
    p.str("best_mean_iu");
    numpy_float64(p, module);
    p.str("model_state_dict");
    p.op('}');
    p.mark();
    p.str("w");
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.mark();
    p.mark();
    p.str("storage");
    p.global("torch", "FloatStorage");
    p.str("0");
    p.str("cpu");
    p.integer(1);
    p.tuple();
    p.op('Q');
    p.integer(0);
    p.int_tuple({1});
    p.int_tuple({1});
    p.op(0x89);
    p.op('N');
    p.tuple();
    p.op('R');
    p.op('u');
    p.op('u');
    p.stop();
    const TensorMap m = read(testing::make_pth_zip(p.w.b, {{"0", testing::to_bytes(std::vector<float>{5.f})}}));
    EXPECT_EQ(m.names(), (std::vector<std::string>{"w"})) << module;
    EXPECT_EQ(m.at("w").to_vector<float>(), (std::vector<float>{5.f}));
  }
  // A numpy scalar cannot be called or built on, and numpy's array reconstruction is refused.
  for (const char* bad : {"numpy.core.multiarray\n_reconstruct\n", "numpy\nload\n", "_codecs\ndecode\n"}) {
    testing::PickleWriter p;
    p.proto();
    p.op('c');
    p.w.str(bad);
    p.op(')');
    p.op('R');
    p.stop();
    EXPECT_NE(::cbst::testing::error_of([&] { read(testing::make_pth_zip(p.w.b, {})); }).find("refused pickle global"),
              std::string::npos) << bad;
  }
}

TEST(PthZip, DeflatedMembersAreInflated) {
  const Fixture f = small_state_dict();
  // DEFLATE "stored" blocks: BFINAL=1, BTYPE=00, LEN, NLEN, bytes.
  auto stored_deflate = [](const Bytes& data) {
    testing::ByteWriter w;
    w.u8(0x01);
    w.u16(uint16_t(data.size()));
    w.u16(uint16_t(~data.size()));
    w.raw(data);
    return w.b;
  };
  const Bytes pickle = testing::state_dict_pickle(f.tensors, false);
  std::vector<testing::ZipMember> members = {{"m/data.pkl", pickle, stored_deflate(pickle)}};
  for (const auto& [k, v] : f.storages) members.push_back({"m/data/" + k, v, stored_deflate(v)});
  expect_small_state_dict(read(testing::make_zip(members)));
}

TEST(PthLegacy, ReadsTheFivePickleLayout) {
  const TensorMap m = read(small_legacy());
  expect_small_state_dict(m);
  EXPECT_EQ(m.format, "pytorch-legacy");
}

TEST(PthLegacy, StorageViewsSelectElementsOfTheRootStorage) {
  // pid view_metadata (view_key, offset, size): the tensor sees elements [2, 5) of the root.
  testing::PickleWriter p;
  p.proto();
  p.op('}');
  p.str("v");
  p.global("torch._utils", "_rebuild_tensor_v2");
  p.mark();
  p.mark();
  p.str("storage");
  p.global("torch", "FloatStorage");
  p.str("1000");
  p.str("cpu");
  p.integer(6);
  p.mark();
  p.str("1001");
  p.integer(2);
  p.integer(3);
  p.tuple();
  p.tuple();
  p.op('Q');
  p.integer(1);
  p.int_tuple({2});
  p.int_tuple({1});
  p.op(0x89);
  p.op('N');
  p.tuple();
  p.op('R');
  p.op('s');
  p.stop();
  const Bytes file = testing::make_pth_legacy(p.w.b, {{"1000", testing::to_bytes(testing::iota_floats(6))}}, {6});
  EXPECT_EQ(read(file).at("v").to_vector<float>(), (std::vector<float>{3.f, 4.f}));
}

// The legacy pickles are parsed an opcode at a time; through an unbuffered file source that
// was one pread per byte (50 MB of MARKs took minutes).
class CountingSource : public MemorySource {
 public:
  using MemorySource::MemorySource;
  mutable int reads = 0;

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override {
    ++reads;
    MemorySource::read_unchecked(offset, dst, n);
  }
};

TEST(PthLegacy, PicklesAreReadThroughAReadAheadWindow) {
  const Bytes file = small_legacy();
  CountingSource src(file, "test.pth");
  expect_small_state_dict(load_weights(src));
  EXPECT_GT(file.size(), 500u);
  EXPECT_LE(src.reads, 10) << "a " << file.size() << "-byte file needs a handful of reads, not one per opcode";
}

TEST(PthHostile, EveryTruncationIsAnError) {
  for (const Bytes& file : {small_zip(), small_legacy()}) {
    const size_t errors = testing::count_prefix_errors(file, [](const ByteSource& s) { load_weights(s); });
    EXPECT_EQ(errors, file.size());
  }
}

TEST(PthHostile, FlippedBytesNeverCrash) {
  for (const Bytes& file : {small_zip(), small_legacy()}) {
    for (size_t i = 0; i < file.size(); ++i) {
      Bytes bad = file;
      bad[i] ^= 0xA5;
      try {
        read(bad);
      } catch (const Error&) {
      }
    }
  }
}

TEST(PthHostile, FlippedTensorByteFailsTheCrcCheck) {
  Bytes file = small_zip();
  MemorySource src(file);
  ZipArchive zip(src);
  const uint64_t at = zip.data_offset(*zip.find("archive/data/0"));
  file[at] ^= 1;
  EXPECT_NE(error_of(file).find("CRC-32"), std::string::npos);
}

TEST(PthHostile, ViewsPastTheirStorageAreRejected) {
  auto with = [](PickledTensor t, size_t storage_bytes) {
    return testing::make_pth_zip(testing::state_dict_pickle({t}, false), {{"0", Bytes(storage_bytes, 0)}});
  };
  const PickledTensor base{.name = "w", .key = "0", .storage_numel = 4, .size = {2, 2}, .stride = {2, 1}};
  PickledTensor big_numel = base;
  big_numel.storage_numel = int64_t(1) << 40;
  EXPECT_NE(error_of(with(big_numel, 16)).find("record holds 16 bytes"), std::string::npos);
  PickledTensor past_end = base;
  past_end.offset = 1;
  EXPECT_NE(error_of(with(past_end, 16)).find("reaches element 4"), std::string::npos);
  PickledTensor bad_stride = base;
  bad_stride.stride = {3, 1};
  EXPECT_NE(error_of(with(bad_stride, 16)).find("storage of 4 elements"), std::string::npos);
  PickledTensor huge = base;
  huge.size = {int64_t(1) << 62, 8};
  EXPECT_NE(error_of(with(huge, 16)).find("overflow"), std::string::npos);
  PickledTensor negative = base;
  negative.size = {-2, 2};
  EXPECT_NE(error_of(with(negative, 16)).find("negative dimension"), std::string::npos);
  EXPECT_NE(error_of(testing::make_pth_zip(testing::state_dict_pickle({base}, false), {})).find("missing"),
            std::string::npos);
}

// A zero-stride view of 2^62 + 1 elements passed the bounds check (it reaches only element
// 0) and its byte count wrapped to 4, so the gather wrote past a 4-byte buffer.
TEST(PthHostile, ZeroStrideViewsCannotWrapOrBlowUpTheAllocation) {
  auto with = [](const Shape& size, const Shape& stride) {
    const PickledTensor t{.name = "w", .key = "0", .storage_numel = 1, .size = size, .stride = stride};
    return testing::make_pth_zip(testing::state_dict_pickle({t}, false), {{"0", testing::to_bytes(std::vector<float>{7.f})}});
  };
  std::string e = error_of(with({(int64_t(1) << 62) + 1}, {0}));
  EXPECT_NE(e.find("repeats a storage of 1 elements more than 16-fold"), std::string::npos) << e;
  EXPECT_NE(e.find("test.pth"), std::string::npos) << e;
  e = error_of(with({int64_t(1) << 20, int64_t(1) << 20}, {0, 0}));
  EXPECT_NE(e.find("repeats a storage"), std::string::npos) << "one float as 2^40: " << e;
  // Small broadcast views, as PyTorch can save them, still load.
  const Tensor t = read(with({4, 3}, {0, 0})).at("w");
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(12, 7.f));
}

// Zero-size tensors with huge other dimensions are valid and empty (their strides used to
// overflow int64, which is undefined behaviour).
TEST(PthHostile, EmptyTensorsWithHugeDimensionsLoadEmpty) {
  const PickledTensor t{.name = "w", .key = "0", .storage_numel = 0, .size = {int64_t(1) << 62, int64_t(1) << 62, 0},
                        .stride = {0, 0, 1}};
  const Tensor w = read(testing::make_pth_zip(testing::state_dict_pickle({t}, false), {{"0", {}}})).at("w");
  EXPECT_EQ(w.numel(), 0);
  EXPECT_EQ(w.shape(), (Shape{int64_t(1) << 62, int64_t(1) << 62, 0}));
}

// A source that fails every allocation-sized read as the allocator would.
class OutOfMemorySource : public MemorySource {
 public:
  using MemorySource::MemorySource;

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override {
    if (offset > 200) throw std::bad_alloc();
    MemorySource::read_unchecked(offset, dst, n);
  }
};

TEST(PthHostile, OutOfMemoryNamesTheFileAndTheFormat) {
  const Bytes file = small_legacy();
  OutOfMemorySource src(file, "big.pth");
  const std::string e = ::cbst::testing::error_of([&] { load_weights(src); });
  EXPECT_NE(e.find("big.pth: "), std::string::npos) << e;
  EXPECT_NE(e.find("out of memory"), std::string::npos) << e;
  EXPECT_NE(e.find("pytorch-legacy"), std::string::npos) << e;
}

TEST(PthHostile, MaliciousGlobalInsideAZipIsRefusedByName) {
  testing::PickleWriter p;
  p.proto();
  p.op('c');
  p.w.str("posix\nsystem\n");
  p.str("echo pwned");
  p.op(0x85);
  p.op('R');
  p.stop();
  const std::string e = error_of(testing::make_pth_zip(p.w.b, {}));
  EXPECT_NE(e.find("refused pickle global 'posix.system'"), std::string::npos) << e;
  EXPECT_NE(e.find("test.pth"), std::string::npos) << "the error names the file: " << e;
}

TEST(PthHostile, SharedReferenceBombIsRefusedQuickly) {
  // l0 = [], l(k+1) = [lk, lk]: 60 levels describe 2^60 paths in a few hundred bytes.
  testing::PickleWriter p;
  p.proto();
  p.mark();  // every level stays on the stack; one TUPLE collects them at the end
  p.op(']');
  p.put();
  for (uint32_t level = 1; level < 61; ++level) {
    p.op(']');
    p.mark();
    p.get(level - 1);
    p.get(level - 1);
    p.op('e');
    p.put();
  }
  p.tuple();
  p.stop();
  const std::string e = error_of(testing::make_pth_zip(p.w.b, {}));
  EXPECT_NE(e.find("more than"), std::string::npos) << e;
}

TEST(PthHostile, CorruptZipDirectoriesAreRejected) {
  Bytes file = small_zip();
  // The classic end record's central-directory offset is the last 6..2 bytes; the zip64
  // record is authoritative, so corrupt that one.
  const size_t z64 = file.size() - 22 - 20 - 56;
  Bytes bad = file;
  for (int i = 0; i < 8; ++i) bad[z64 + 48 + size_t(i)] = 0xEE;  // cd offset
  EXPECT_NE(error_of(bad).find("central directory"), std::string::npos);
  bad = file;
  for (int i = 0; i < 8; ++i) bad[z64 + 32 + size_t(i)] = 0x7F;  // entry count
  EXPECT_NE(error_of(bad).find("entries cannot fit"), std::string::npos);
  EXPECT_NE(error_of(testing::make_zip({{"nofolder.pkl", {'.'}, {}}})).find("not inside a folder"), std::string::npos);
  EXPECT_NE(error_of(testing::make_zip({{"a/other", {'.'}, {}}})).find("data.pkl"), std::string::npos);
}

}  // namespace
}  // namespace cbst::weights
