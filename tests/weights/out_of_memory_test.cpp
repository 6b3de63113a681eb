// Memory running out inside any weight reader ends in one error naming the file and the
// stage, never in a bare std::bad_alloc (issue 11: "an out-of-memory anywhere must name the
// file and the stage"). The whole program's last resort is tested in
// tests/tools/out_of_memory_test.cpp.
#include <gtest/gtest.h>

#include <new>
#include <string>

#include "tests/support/expect_close.h"
#include "weights/load_weights.h"
#include "weights/safetensors.h"
#include "weights_fixtures.h"

namespace cbst::weights {
namespace {

using testing::Bytes;

// Fails its `fail_at`-th read (counting from 1) as an allocation would; counts reads.
class FailingReadSource : public MemorySource {
 public:
  FailingReadSource(const Bytes& bytes, std::string name, int fail_at)
      : MemorySource(bytes, std::move(name)), fail_at_(fail_at) {}
  int reads() const { return reads_; }

 protected:
  void read_unchecked(uint64_t offset, void* dst, uint64_t n) const override {
    if (++reads_ == fail_at_) throw std::bad_alloc();
    MemorySource::read_unchecked(offset, dst, n);
  }

 private:
  int fail_at_;
  mutable int reads_ = 0;
};

struct NamedFile {
  std::string name;
  Bytes bytes;
};

std::vector<NamedFile> one_file_per_format() {
  TensorMap m;
  m.insert("conv.weight", Tensor::from_vector<float>({1.f, 2.f, 3.f, 4.f}, {2, 2}));
  const std::vector<testing::PickledTensor> t = {
      {.name = "conv.weight", .key = "0", .storage_numel = 4, .size = {2, 2}, .stride = {2, 1}}};
  const Bytes storage = testing::to_bytes(std::vector<float>{1.f, 2.f, 3.f, 4.f});
  testing::ProtoWriter layer;
  layer.string_field(1, "conv");
  layer.string_field(2, "Convolution");
  layer.bytes_field(7, testing::caffe_blob({2, 2}, {1.f, 2.f, 3.f, 4.f}, false, true));
  testing::ProtoWriter net;
  net.string_field(1, "net");
  net.bytes_field(100, layer.b);
  return {
      {"w.safetensors", encode_safetensors(m)},
      {"w_zip.pth", testing::make_pth_zip(testing::state_dict_pickle(t, false), {{"0", storage}})},
      {"w_legacy.pth", testing::make_pth_legacy(testing::state_dict_pickle(t, true), {{"0", storage}}, {4})},
      {"w.params", testing::make_mxnet({{"arg:conv.weight", 0, {2, 2}, storage}}, 0)},
      {"w.caffemodel", net.b},
  };
}

TEST(WeightsOutOfMemory, EveryReadOfEveryFormatNamesTheFileAndTheStage) {
  for (const NamedFile& file : one_file_per_format()) {
    FailingReadSource clean(file.bytes, file.name, 0);
    ASSERT_EQ(load_weights(clean).size(), 1u) << file.name << " is a valid file";
    ASSERT_GT(clean.reads(), 1) << file.name;
    for (int k = 1; k <= clean.reads(); ++k) {
      FailingReadSource src(file.bytes, file.name, k);
      std::string e;
      try {
        load_weights(src);
        ADD_FAILURE() << file.name << ": read " << k << " failed, yet the file loaded";
      } catch (const Error& error) {
        e = error.what();
      } catch (const std::bad_alloc&) {
        ADD_FAILURE() << file.name << ": a bare std::bad_alloc escaped from read " << k;
      }
      SCOPED_TRACE(file.name + ", read " + std::to_string(k) + " of " + std::to_string(clean.reads()));
      EXPECT_EQ(e.rfind(file.name + ": ", 0), 0u) << e;
      EXPECT_NE(e.find("out of memory"), std::string::npos) << e;
      // The stage: detecting the format, or reading as the detected one (the unpickler names
      // the byte it was at).
      EXPECT_TRUE(e.find("while detecting its format") != std::string::npos ||
                  e.find("while reading it as " + std::string(weight_format_name(detect_weight_format(
                                                      MemorySource(file.bytes))))) != std::string::npos ||
                  e.find("pickle: out of memory unpickling the object that starts at byte") != std::string::npos)
          << e;
      EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
    }
  }
}

TEST(WeightsOutOfMemory, ReadingByPathNamesTheFileAndTheStage) {
  const std::string e = ::cbst::testing::error_of([] {
    reading_file("runs/a.safetensors", "reading it as safetensors", []() -> int { throw std::bad_alloc(); });
  });
  EXPECT_EQ(e, "runs/a.safetensors: out of memory while reading it as safetensors; free memory or use a machine "
               "with more");
  const std::string prefixed = ::cbst::testing::error_of([] {
    reading_file("b.params", "reading it as mxnet", []() -> int { CBST_THROW("mxnet: bad magic"); });
  });
  EXPECT_EQ(prefixed, "b.params: mxnet: bad magic");
}

}  // namespace
}  // namespace cbst::weights
