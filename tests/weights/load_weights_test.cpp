// Format detection by content, the checkpoint entry points, and the JSON and half helpers.
#include "weights/load_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "weights/json.h"
#include "weights/raw_dtype.h"
#include "weights/safetensors.h"
#include "tests/support/expect_close.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;

WeightFormat detect(const Bytes& b) {
  MemorySource src(b);
  return detect_weight_format(src);
}

TEST(LoadWeights, DetectsEveryFormatByContent) {
  TensorMap m;
  m.insert("x", Tensor::from_vector<float>({1.f}, {1}));
  EXPECT_EQ(detect(encode_safetensors(m)), WeightFormat::safetensors);
  const std::vector<testing::PickledTensor> t = {{.name = "x", .key = "0", .storage_numel = 1, .size = {1}, .stride = {1}}};
  EXPECT_EQ(detect(testing::make_pth_zip(testing::state_dict_pickle(t, false), {{"0", Bytes(4, 0)}})), WeightFormat::pth_zip);
  EXPECT_EQ(detect(testing::make_pth_legacy(testing::state_dict_pickle(t, true), {{"0", Bytes(4, 0)}}, {1})),
            WeightFormat::pth_legacy);
  EXPECT_EQ(detect(testing::make_mxnet({{"arg:x", 0, {1}, Bytes(4, 0)}}, 0)), WeightFormat::mxnet);
  testing::ProtoWriter net;
  net.string_field(1, "net");
  EXPECT_EQ(detect(net.b), WeightFormat::caffemodel);
  EXPECT_EQ(detect({'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0}), WeightFormat::unknown);
  EXPECT_EQ(detect({}), WeightFormat::unknown);
}

TEST(LoadWeights, UnknownFormatErrorNamesTheFileAndTheFormats) {
  const Bytes gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0};
  MemorySource src(gif, "picture.gif");
  try {
    load_weights(src);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("picture.gif: unknown weight format", 0), 0u) << msg;
    EXPECT_NE(msg.find("47 49 46 38"), std::string::npos) << msg;
    EXPECT_NE(msg.find("safetensors"), std::string::npos) << msg;
  }
}

TEST(LoadWeights, MissingFileAndCheckpointOfTheWrongFormat) {
  EXPECT_THROW(load_weights(std::string("/nonexistent/cbst.pth")), Error);
  const auto path = std::filesystem::temp_directory_path() / ("cbst_lw_" + std::to_string(::getpid()) + ".params");
  const Bytes file = testing::make_mxnet({{"arg:x", 0, {1}, Bytes(4, 0)}}, 0);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()), std::streamsize(file.size()));
  EXPECT_EQ(load_weights(path.string()).names(), (std::vector<std::string>{"arg:x"}));
  try {
    load_checkpoint(path.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cbst weights convert"), std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST(TensorMap, KeepsOrderRejectsDuplicatesAndSuggestsNames) {
  TensorMap m;
  m.insert("backbone.conv1.weight", Tensor::zeros({2}));
  m.insert("a", Tensor::zeros({3}, DType::i64));
  EXPECT_THROW(m.insert("a", Tensor::zeros({1})), Error);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"backbone.conv1.weight", "a"}));
  EXPECT_EQ(m.sorted_names(), (std::vector<std::string>{"a", "backbone.conv1.weight"}));
  EXPECT_EQ(m.parameter_count(), 5);
  EXPECT_EQ(m.byte_count(), 2u * 4 + 3u * 8);
  try {
    m.at("backbone.conv1.wieght");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("closest: 'backbone.conv1.weight'"), std::string::npos);
  }
  m.rename("a", "b");
  EXPECT_TRUE(m.contains("b"));
  EXPECT_EQ(m.take("b").numel(), 3);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_TRUE(m.contains("backbone.conv1.weight"));
}

// `cbst: error: stoll` was all a non-numeric checkpoint field produced.
TEST(TensorMap, NonNumericMetadataIsAnErrorNamingTheFileKeyAndValue) {
  TensorMap m;
  m.source = "runs/x/checkpoints/latest.safetensors";
  m.metadata = {{"round", "3"}, {"epoch", "two"}, {"step", "12abc"}, {"seed", "-1"}, {"huge", "99999999999999999999"}};
  EXPECT_EQ(m.metadata_int("round", -1), 3);
  EXPECT_EQ(m.metadata_int("absent", -1), -1);
  const std::string e = ::cbst::testing::error_of([&] { m.metadata_int("epoch", 0); });
  EXPECT_NE(e.find("runs/x/checkpoints/latest.safetensors: metadata 'epoch' is 'two', not an integer"), std::string::npos) << e;
  EXPECT_NE(::cbst::testing::error_of([&] { m.metadata_int("step", 0); }).find("'12abc'"), std::string::npos);
  EXPECT_NE(::cbst::testing::error_of([&] { m.metadata_u64("seed", 0); }).find("non-negative"), std::string::npos);
  EXPECT_NE(::cbst::testing::error_of([&] { m.metadata_int("huge", 0); }).find("in range"), std::string::npos);
}

TEST(LoadWeights, CheckpointsWithNanOrInfiniteWeightsAreRefusedByName) {
  const std::string path = (std::filesystem::temp_directory_path() / ("cbst_nan_" + std::to_string(::getpid()) + ".safetensors")).string();
  TensorMap m;
  m.insert("counter", Tensor::from_vector<int64_t>({3}, {1}));
  m.insert("conv.weight", Tensor::from_vector<float>({1.f, 2.f, NAN, 4.f}, {2, 2}));
  save_checkpoint(path, m);
  const std::string e = ::cbst::testing::error_of([&] { load_checkpoint(path); });
  EXPECT_NE(e.find(path + ": tensor 'conv.weight' holds nan at element 2 of 4"), std::string::npos) << e;
  EXPECT_EQ(load_weights(path).size(), 2u) << "inspection (load_weights) still reads the file";
  m.set("conv.weight", Tensor::from_vector<double>({1.0, -INFINITY}, {2}));
  save_checkpoint(path, m);
  EXPECT_NE(::cbst::testing::error_of([&] { load_checkpoint(path); }).find("holds -inf at element 1"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(Json, ParsesAndRejects) {
  const nlohmann::json v = parse_json(" {\"a\": [1, -2.5e3, true, null, \"\\u00e9\\ud83d\\ude00\\n\"], \"b\": {}} ");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.at("a").size(), 5u);
  EXPECT_EQ(v.at("a")[4].get<std::string>(), "\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_TRUE(parse_json("18446744073709551615").is_number_unsigned());
  EXPECT_EQ(parse_json("18446744073709551615").get<uint64_t>(), UINT64_MAX);
  EXPECT_FALSE(parse_json("18446744073709551616").is_number_unsigned());
  for (const char* bad : {"{", "{\"a\":1,}", "[1 2]", "01", "\"\\x\"", "\"\\ud800\"", "{\"a\":1,\"a\":2}", "nul", "1 2",
                          "\"a\x01\"", "\"\xff\"", "\"\xc0\xaf\"", "[1e999]"})
    EXPECT_THROW(parse_json(bad), Error) << bad;
}

TEST(Json, ErrorsSayWhatAndWhereInOneLine) {
  const std::string syntax = ::cbst::testing::error_of([] { parse_json("{\"a\": nul}"); });
  EXPECT_EQ(syntax.rfind("invalid JSON at byte 10: syntax error while parsing value - invalid literal", 0), 0u) << syntax;
  EXPECT_EQ(syntax.find("json.exception"), std::string::npos) << syntax;
  // The token of an unterminated string runs to the end of the text; the message stays short.
  const std::string unterminated = ::cbst::testing::error_of([] { parse_json("[\"" + std::string(100000, 'x')); });
  EXPECT_NE(unterminated.find("missing closing quote"), std::string::npos) << unterminated.substr(0, 300);
  EXPECT_LT(unterminated.size(), 220u);
  const std::string duplicate = ::cbst::testing::error_of([] { parse_json("{\"a\": {\"k\": 1, \"k\\n\": 2, \"k\": 3}}"); });
  EXPECT_EQ(duplicate, "invalid JSON: duplicate member name 'k'");
  // The same name in different objects is no duplicate.
  EXPECT_NO_THROW(parse_json("{\"a\": {\"k\": 1}, \"b\": {\"k\": 1}, \"k\": [{\"k\": 0}]}"));
}

TEST(Json, NestingAndValueCountAreBounded) {
  const auto nested = [](int levels) { return std::string(size_t(levels), '[') + std::string(size_t(levels), ']'); };
  EXPECT_NO_THROW(parse_json(nested(65))) << "64 levels inside the outermost array";
  EXPECT_EQ(::cbst::testing::error_of([&] { parse_json(nested(66)); }), "invalid JSON: nesting deeper than 64 levels");
  std::string values = "[0";
  for (size_t i = 1; i < (size_t(1) << 21) - 1; ++i) values += ",0";
  EXPECT_EQ(parse_json(values + "]").size(), (size_t(1) << 21) - 1) << "the array and its elements: 2^21 values";
  EXPECT_EQ(::cbst::testing::error_of([&] { parse_json(values + ",0]"); }), "invalid JSON: more than 2097152 values");
}

TEST(HalfFloat, EveryHalfValueConvertsExactly) {
  // binary16 values are exactly representable in binary32: check against ldexp.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(uint16_t(h));
    const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    const float sign = (h & 0x8000) ? -1.f : 1.f;
    if (exp == 0x1f) {
      EXPECT_TRUE(mant ? std::isnan(f) : std::isinf(f)) << h;
      continue;
    }
    const float expected = exp == 0 ? sign * std::ldexp(float(mant), -24)
                                    : sign * std::ldexp(float(mant + 1024), int(exp) - 25);
    ASSERT_EQ(f, expected) << h;
  }
}

}  // namespace
}  // namespace cbst::weights
