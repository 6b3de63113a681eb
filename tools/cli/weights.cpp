// `cbst weights inspect FILE`: the tensors of any supported weight file.
//
// One line per tensor, sorted by name: `NAME DTYPE [d0,d1,...]` (DTYPE is the engine type
// the tensor loads as: f16/bf16 files show f32), then
// `total: N tensors, P parameters, B bytes (FORMAT)`.
// `weights convert` belongs with the models (it needs a model's name mapping) and lives
// beside them.
#include <cstdio>
#include <string>

#include "tools/cli/registry.h"
#include "weights/load_weights.h"

namespace {

std::string dims(const cbst::Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

void inspect(const std::string& path) {
  const cbst::weights::TensorMap map = cbst::weights::load_weights(path);
  for (const std::string& name : map.sorted_names()) {
    const cbst::Tensor& t = map.at(name);
    std::printf("%s %s %s\n", name.c_str(), cbst::dtype_name(t.dtype()), dims(t.shape()).c_str());
  }
  std::printf("total: %zu tensors, %lld parameters, %llu bytes (%s)\n", map.size(),
              static_cast<long long>(map.parameter_count()), static_cast<unsigned long long>(map.byte_count()),
              map.format.c_str());
}

cbst::cli::Command reg_inspect({.parent = "weights", .name = "inspect",
                                .help = "List the tensors of a weight file (safetensors, .pth, .params, .caffemodel)"},
                               [](CLI::App& cmd) {
                                 auto path = std::make_shared<std::string>();
                                 cmd.add_option("FILE", *path, "weight file")->required();
                                 cmd.callback([path] { inspect(*path); });
                               });

}  // namespace
