#include "weights/mxnet.h"

#include <gtest/gtest.h>

#include "weights/load_weights.h"
#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;
using testing::MxArray;

std::vector<MxArray> resnet_like() {
  return {
      {"arg:conv1a_weight", 0, {2, 1, 3, 3}, testing::to_bytes(testing::iota_floats(18))},
      {"aux:bn2a_branch2a_moving_var", 1, {2}, testing::to_bytes(std::vector<double>{0.25, 4.0})},
      {"arg:label_map", 6, {3}, testing::to_bytes(std::vector<int64_t>{-1, 0, 1})},
      {"arg:half", 2, {1}, testing::to_bytes(std::vector<uint16_t>{0x3C00})},
  };
}

TensorMap read(const Bytes& b) {
  MemorySource src(b, "model.params");
  return load_weights(src);
}

std::string error_of(const Bytes& b) { return ::cbst::testing::error_of([&] { read(b); }); }

TEST(Mxnet, ReadsEveryRecordVersionWithPrefixedNames) {
  for (int version : {0, 1, 2, 3}) {
    const TensorMap m = read(testing::make_mxnet(resnet_like(), version));
    ASSERT_EQ(m.size(), 4u) << version;
    EXPECT_EQ(m.format, "mxnet");
    EXPECT_EQ(m.names().front(), "arg:conv1a_weight");
    EXPECT_EQ(m.at("arg:conv1a_weight").shape(), (Shape{2, 1, 3, 3}));
    EXPECT_EQ(m.at("arg:conv1a_weight").to_vector<float>(), testing::iota_floats(18));
    EXPECT_EQ(m.at("aux:bn2a_branch2a_moving_var").to_vector<double>(), (std::vector<double>{0.25, 4.0}));
    EXPECT_EQ(m.at("arg:label_map").to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 1}));
    EXPECT_EQ(m.at("arg:half").to_vector<float>(), (std::vector<float>{1.f}));
  }
}

TEST(Mxnet, ListFilesWithoutNamesAreNumbered) {
  const TensorMap m = read(testing::make_mxnet(resnet_like(), 0, false));
  EXPECT_EQ(m.names(), (std::vector<std::string>{"0", "1", "2", "3"}));
}

TEST(Mxnet, V3ScalarsAndNoneArrays) {
  testing::ByteWriter w;
  w.u64(0x112);
  w.u64(0);
  w.u64(2);
  w.u32(0xF993FACA);  // V3 scalar: ndim 0 holds one element
  w.i32(0);
  w.i32(0);
  w.i32(1);
  w.i32(0);
  w.i32(0);
  w.raw(testing::to_bytes(std::vector<float>{3.5f}));
  w.u32(0xF993FACA);  // V3 none: ndim -1
  w.i32(0);
  w.i32(-1);
  w.u64(2);
  for (const std::string name : {"arg:s", "arg:none"}) {
    w.u64(name.size());
    w.str(name);
  }
  const TensorMap m = read(w.b);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"arg:s"}));
  EXPECT_EQ(m.at("arg:s").shape(), Shape{});
  EXPECT_EQ(m.at("arg:s").item<float>(), 3.5f);
}

TEST(Mxnet, EmptyArraysWithHugeDimensionsLoadEmpty) {
  const Tensor t = read(testing::make_mxnet({{"arg:e", 0, {0, int64_t(1) << 62, int64_t(1) << 62}, {}}}, 2)).at("arg:e");
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.shape(), (Shape{0, int64_t(1) << 62, int64_t(1) << 62}));
}

TEST(Mxnet, EveryTruncationOfEveryVersionIsAnError) {
  for (int version : {0, 1, 2, 3}) {
    const Bytes file = testing::make_mxnet(resnet_like(), version);
    EXPECT_EQ(testing::count_prefix_errors(file, [](const ByteSource& s) { load_weights(s); }), file.size()) << version;
  }
}

TEST(Mxnet, CorruptRecordsAreRejected) {
  const Bytes good = testing::make_mxnet(resnet_like(), 2);
  Bytes bad = good;
  bad[16] = 0xff;  // array count
  EXPECT_NE(error_of(bad).find("cannot fit"), std::string::npos);
  bad = good;
  bad[24 + 4 + 4] = 0x7f;  // ndim of the first record
  EXPECT_NE(error_of(bad).find("dimensions"), std::string::npos);
  bad = good;
  for (int i = 0; i < 8; ++i) bad[24 + 12 + size_t(i)] = 0x40;  // first dim: huge
  EXPECT_NE(error_of(bad).find("overflows"), std::string::npos) << error_of(bad);
  bad = good;
  bad[24 + 12 + 5] = 0x01;  // first dim 2^40 + 2: fits in 64 bits, not in the file
  EXPECT_NE(error_of(bad).find("truncated"), std::string::npos) << error_of(bad);
  bad = good;
  bad[24 + 12 + 32 + 8] = 99;  // type flag
  EXPECT_NE(error_of(bad).find("unknown type flag 99"), std::string::npos);
  bad = good;
  bad[24 + 4] = 1;  // stype row_sparse
  EXPECT_NE(error_of(bad).find("sparse"), std::string::npos);
  bad = good;
  bad.push_back(0);
  EXPECT_NE(error_of(bad).find("unexpected bytes"), std::string::npos);
  bad = testing::make_mxnet(resnet_like(), 0);
  bad[24] = 200;  // legacy ndim
  EXPECT_NE(error_of(bad).find("plausible"), std::string::npos);
}

TEST(Mxnet, FlippedBytesNeverCrash) {
  for (int version : {0, 2}) {
    const Bytes file = testing::make_mxnet(resnet_like(), version);
    for (size_t i = 0; i < file.size(); ++i) {
      for (uint8_t mask : {uint8_t(0x80), uint8_t(0xff)}) {
        Bytes bad = file;
        bad[i] ^= mask;
        try {
          read(bad);
        } catch (const Error&) {
        }
      }
    }
  }
}

}  // namespace
}  // namespace cbst::weights
