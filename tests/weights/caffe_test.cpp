#include "weights/caffe.h"

#include <gtest/gtest.h>

#include "weights/load_weights.h"
#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;
using testing::ProtoWriter;

// NetParameter with new-style `layer` (100): a Convolution with BlobShape dims and packed
// data, an InnerProduct with unpacked data, and a BatchNorm (indexed names).
Bytes v2_net() {
  ProtoWriter net;
  net.string_field(1, "VGG_ILSVRC_16_layers");
  ProtoWriter conv;
  conv.string_field(1, "conv1_1");
  conv.string_field(2, "Convolution");
  conv.string_field(3, "data");
  conv.bytes_field(7, testing::caffe_blob({2, 1, 2, 2}, testing::iota_floats(8), false, true));
  conv.bytes_field(7, testing::caffe_blob({2}, {0.5f, -0.5f}, false, true));
  net.bytes_field(100, conv.b);
  ProtoWriter relu;
  relu.string_field(1, "relu1_1");
  relu.string_field(2, "ReLU");
  net.bytes_field(100, relu.b);
  ProtoWriter fc;
  fc.string_field(1, "fc8");
  fc.string_field(2, "InnerProduct");
  fc.bytes_field(7, testing::caffe_blob({3, 2}, testing::iota_floats(6, 10.f), false, false));
  net.bytes_field(100, fc.b);
  ProtoWriter bn;
  bn.string_field(1, "bn1");
  bn.string_field(2, "BatchNorm");
  for (int i = 0; i < 3; ++i) bn.bytes_field(7, testing::caffe_blob({1}, {float(i)}, false, true));
  net.bytes_field(100, bn.b);
  return net.b;
}

// Old-style `layers` (2, V1LayerParameter): enum types, legacy 4-D blob dims.
Bytes v1_net() {
  ProtoWriter net;
  net.string_field(1, "old");
  ProtoWriter fc6;
  fc6.string_field(4, "fc6");
  fc6.int_field(5, 14);  // INNER_PRODUCT
  fc6.bytes_field(6, testing::caffe_blob({1, 1, 2, 3}, testing::iota_floats(6), true, true));
  fc6.bytes_field(6, testing::caffe_blob({1, 1, 1, 2}, {1.f, 2.f}, true, false));
  net.bytes_field(2, fc6.b);
  ProtoWriter pool;
  pool.string_field(4, "pool1");
  pool.int_field(5, 17);
  net.bytes_field(2, pool.b);
  return net.b;
}

TensorMap read(const Bytes& b) {
  MemorySource src(b, "net.caffemodel");
  return load_weights(src);
}

std::string error_of(const Bytes& b) { return ::cbst::testing::error_of([&] { read(b); }); }

TEST(Caffe, ReadsLayerFieldWithBlobShapesPackedAndUnpacked) {
  const TensorMap m = read(v2_net());
  EXPECT_EQ(m.format, "caffemodel");
  EXPECT_EQ(m.metadata.at("caffe.net_name"), "VGG_ILSVRC_16_layers");
  EXPECT_EQ(m.names(), (std::vector<std::string>{"conv1_1.weight", "conv1_1.bias", "fc8.weight", "bn1.0", "bn1.1", "bn1.2"}));
  EXPECT_EQ(m.at("conv1_1.weight").shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ(m.at("conv1_1.weight").to_vector<float>(), testing::iota_floats(8));
  EXPECT_EQ(m.at("conv1_1.bias").to_vector<float>(), (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(m.at("fc8.weight").to_vector<float>(), testing::iota_floats(6, 10.f));
  EXPECT_EQ(m.at("bn1.2").item<float>(), 2.f);
}

TEST(Caffe, ReadsV1LayersWithLegacyFourDimensionalBlobs) {
  const TensorMap m = read(v1_net());
  EXPECT_EQ(m.names(), (std::vector<std::string>{"fc6.weight", "fc6.bias"}));
  EXPECT_EQ(m.at("fc6.weight").shape(), (Shape{1, 1, 2, 3}));
  EXPECT_EQ(m.at("fc6.bias").shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(m.at("fc6.bias").to_vector<float>(), (std::vector<float>{1.f, 2.f}));
}

TEST(Caffe, DoubleDataWinsOverFloatData) {
  ProtoWriter blob;
  ProtoWriter dims;
  dims.int_field(1, 2);  // unpacked BlobShape dim
  blob.bytes_field(7, dims.b);
  blob.bytes_field(8, testing::to_bytes(std::vector<double>{0.1, 0.2}));
  ProtoWriter layer;
  layer.string_field(1, "scale");
  layer.string_field(2, "Scale");
  layer.bytes_field(7, blob.b);
  ProtoWriter net;
  net.bytes_field(100, layer.b);
  const TensorMap m = read(net.b);
  EXPECT_EQ(m.at("scale.weight").dtype(), DType::f64);
  EXPECT_EQ(m.at("scale.weight").to_vector<double>(), (std::vector<double>{0.1, 0.2}));
}

// An empty packed data field used to reach memcpy with a null pointer (UB even for 0
// bytes), and a zero-size blob's other dimensions used to overflow its strides.
TEST(Caffe, EmptyBlobsWithHugeDimensionsLoadEmpty) {
  ProtoWriter net;
  ProtoWriter layer;
  layer.string_field(1, "empty");
  layer.string_field(2, "Convolution");
  layer.bytes_field(7, testing::caffe_blob({int64_t(1) << 62, 0, int64_t(1) << 62}, {}, false, true));
  net.bytes_field(100, layer.b);
  const Tensor w = read(net.b).at("empty.weight");
  EXPECT_EQ(w.numel(), 0);
  EXPECT_EQ(w.shape(), (Shape{int64_t(1) << 62, 0, int64_t(1) << 62}));
}

TEST(Caffe, TruncationsAreErrorsOrFewerLayersNeverACrash) {
  // Protobuf has no end marker: a prefix that ends exactly between two top-level layers is
  // a valid, smaller net. Every other prefix must be an error.
  for (const Bytes& file : {v2_net(), v1_net()}) {
    const std::vector<std::string> full = read(file).names();
    size_t errors = 0;
    for (size_t n = 0; n < file.size(); ++n) {
      const Bytes prefix(file.begin(), file.begin() + std::ptrdiff_t(n));
      try {
        const std::vector<std::string> names = read(prefix).names();
        ASSERT_LE(names.size(), full.size());
        EXPECT_TRUE(std::equal(names.begin(), names.end(), full.begin())) << "prefix " << n;
      } catch (const Error&) {
        ++errors;
      }
    }
    EXPECT_GT(errors, file.size() * 9 / 10);
  }
}

TEST(Caffe, CorruptBlobsAreRejected) {
  auto net_with_blob = [](const Bytes& blob) {
    ProtoWriter layer;
    layer.string_field(1, "l");
    layer.bytes_field(7, blob);
    ProtoWriter net;
    net.bytes_field(100, layer.b);
    return net.b;
  };
  EXPECT_NE(error_of(net_with_blob(testing::caffe_blob({3}, {1.f, 2.f}, false, true))).find("holds 2 values"),
            std::string::npos);
  ProtoWriter odd;
  odd.bytes_field(5, {1, 2, 3});
  EXPECT_NE(error_of(net_with_blob(odd.b)).find("packed float data of 3 bytes"), std::string::npos);
  ProtoWriter huge;
  ProtoWriter dims;
  dims.int_field(1, int64_t(1) << 40);
  huge.bytes_field(7, dims.b);
  EXPECT_NE(error_of(net_with_blob(huge.b)).find("holds 0 values"), std::string::npos);
  ProtoWriter overflow;
  ProtoWriter big_dims;
  for (int i = 0; i < 4; ++i) big_dims.int_field(1, int64_t(1) << 40);
  overflow.bytes_field(7, big_dims.b);
  EXPECT_NE(error_of(net_with_blob(overflow.b)).find("overflows"), std::string::npos);
  // A length prefix past the end, a group wire type, an over-long varint.
  EXPECT_NE(error_of({0xA2, 0x06, 0xff, 0x7f, 0x00}).find("truncated"), std::string::npos);
  EXPECT_NE(error_of({0x0A, 0x00, 0x13}).find("wire type 3"), std::string::npos);
  EXPECT_NE(error_of({0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}).find("varint"),
            std::string::npos);
  EXPECT_NE(error_of({0x0A, 0x01, 'x'}).find("no layers"), std::string::npos);
}

TEST(Caffe, FlippedBytesNeverCrash) {
  const Bytes file = v2_net();
  for (size_t i = 0; i < file.size(); ++i) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      Bytes bad = file;
      bad[i] ^= mask;
      try {
        read(bad);
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace cbst::weights
