// `cbst weights convert IN OUT.safetensors --model NAME`: any supported weight file → a
// checkpoint that our models load (DESIGN §5).
//
// IN is read in any format (weights/load_weights.h: content-detected .pth, .params,
// .caffemodel, safetensors), mapped by name and shape onto a freshly initialised model
// (models/weight_import.h), and the model's whole state is written atomically with the
// metadata {model, num_classes, input_convention} that load_model_checkpoint expects.
// Prints the detected layout, the input convention, the source tensors with no place in the
// model ("dropped") and the model tensors IN does not provide ("not covered": they keep their
// initialisation, e.g. FCN8s's score layers when IN is ImageNet VGG16).
//
// --classes defaults to the file's (a cbst checkpoint's metadata or its classifier's rows),
// else 19; an explicit different count is refused naming both, and a file whose other layers
// disagree is refused with every mis-shaped tensor named. A file that leaves layers of the
// network outside its head uninitialised (timm's fc layers under other names, a features-only
// export) is refused unless --allow-partial. Every error is one line on stderr and exit
// status 1 (the mapping's multi-line report is joined with "; ").
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/check.h"
#include "models/segmentation_model.h"
#include "models/weight_import.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string model;
  int64_t classes = 0;           // 0: the file's own count, else 19
  bool allow_partial = false;
  std::string input_convention;  // empty: the one the detected layout implies
  uint64_t seed = 0;             // initialisation of the layers IN does not cover
};

// "a\n  b\nhint: c" → "a; b; hint: c": main prints an error as one line.
std::string one_line(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') {
      out += text[i];
      continue;
    }
    while (i + 1 < text.size() && (text[i + 1] == ' ' || text[i + 1] == '\n')) ++i;
    if (i + 1 < text.size()) out += "; ";
  }
  return out;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(b, ec) && fs::equivalent(a, b, ec)) return true;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

void print_names(const char* what, const std::vector<std::string>& names) {
  std::printf("%-12s: %zu%s\n", what, names.size(), names.empty() ? "" : ":");
  for (const std::string& n : names) std::printf("  %s\n", n.c_str());
}

void convert(const ConvertOptions& o) {
  // User errors throw plain messages (CBST_THROW): the check's expression and source line
  // would only lengthen the one line.
  if (same_file(o.input, o.output))
    CBST_THROW("weights convert: OUT (", o.output, ") is IN (", o.input,
               "); refusing to overwrite the input; hint: write to a new .safetensors file");
  const weights::TensorMap source = weights::load_weights(o.input);
  const auto recorded = source.metadata.find("model");
  if (recorded != source.metadata.end() && recorded->second != o.model)
    CBST_THROW(o.input, " is a cbst ", recorded->second, " checkpoint, not ", o.model, "; hint: --model ",
               recorded->second);

  const auto c = source.metadata.find("num_classes");
  if (c != source.metadata.end() && recorded != source.metadata.end()) {
    char* end = nullptr;
    const long long n = std::strtoll(c->second.c_str(), &end, 10);
    if (c->second.empty() || *end != 0 || n < 1)
      CBST_THROW(o.input, ": its metadata num_classes '", c->second, "' is not a class count; hint: pass --classes");
  }
  std::string where;
  const int64_t file_classes = classes_in_weights(source, &where);
  if (o.classes > 0 && file_classes > 0 && o.classes != file_classes)
    CBST_THROW("--classes ", o.classes, " does not match ", o.input, ", whose ", where, " gives ", file_classes,
               " classes; drop --classes (the file's count is used) or convert weights with ", o.classes, " classes");
  const int64_t classes = o.classes > 0 ? o.classes : file_classes > 0 ? file_classes : 19;
  auto model = create_model(o.model, {.num_classes = classes, .seed = o.seed, .initialize = true});
  WeightImport report;
  try {
    report = import_weights(source, *model);
  } catch (const Error& e) {
    rethrow_with_context(e, o.input + ": ");
  }
  if (report.tensors.empty())
    CBST_THROW(o.input, ": none of its ", source.size(), " tensors fits ", o.model, " (layout ", report.layout,
               "); hint: check --model");
  check_import_complete(report, *model, o.input, {.allow_partial = o.allow_partial});
  const std::string convention = o.input_convention.empty() ? report.input_convention : o.input_convention;

  std::printf("input       : %s (%s, %zu tensors)\n", o.input.c_str(), source.format.c_str(), source.size());
  std::printf("model       : %s, %lld classes\n", o.model.c_str(), static_cast<long long>(classes));
  std::printf("layout      : %s\n", report.layout.c_str());
  std::printf("convention  : %s%s\n", convention.c_str(),
              o.input_convention.empty() || o.input_convention == report.input_convention
                  ? ""
                  : (" (set by --input-convention; the layout implies " + report.input_convention + ")").c_str());
  for (const std::string& note : report.notes) std::printf("note        : %s\n", note.c_str());
  std::printf("imported    : %zu tensors\n", report.tensors.size());
  print_names("dropped", report.dropped);
  print_names("not covered", report.not_covered);
  if (!report.not_covered.empty()) std::printf("  (not covered: initialised with seed %llu)\n",
                                               static_cast<unsigned long long>(o.seed));

  const weights::TensorMap checkpoint = model_checkpoint(*model, convention);
  weights::save_checkpoint(o.output, checkpoint);
  std::printf("wrote %s: %zu tensors, %lld parameters\n", o.output.c_str(), checkpoint.size(),
              static_cast<long long>(checkpoint.parameter_count()));
}

cli::Command reg({.parent = "weights", .name = "convert",
                  .help = "Map a weight file (any format) onto a model and write a cbst checkpoint"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<ConvertOptions>();
                   cmd.add_option("IN", o->input, "weight file: .pth, .params, .caffemodel or .safetensors")
                       ->required();
                   cmd.add_option("OUT", o->output, "checkpoint to write (.safetensors)")->required();
                   cmd.add_option("--model", o->model, "the network the weights are for")
                       ->required()
                       ->check(CLI::IsMember(model_names()));
                   cmd.add_option("--classes", o->classes,
                                  "number of classes; 0: the file's (a checkpoint's, or its classifier's), else 19")
                       ->check(cbst::cli::InRange(0, 255));
                   cli::add_allow_partial_flag(cmd, o->allow_partial);
                   cmd.add_option("--input-convention", o->input_convention,
                                  "override the input normalisation recorded (default: the layout's)")
                       ->check(CLI::IsMember({"caffe", "torchvision"}));
                   cmd.add_option("--seed", o->seed, "initialisation seed of the layers IN does not cover")
                       ->capture_default_str();
                   cmd.callback([o] {
                     try {
                       convert(*o);
                     } catch (const std::bad_alloc&) {
                       throw;  // main names the stage; "std::bad_alloc" alone would say nothing
                     } catch (const Error& e) {
                       throw Error(one_line(e.what()), one_line(e.user_message()));
                     } catch (const std::exception& e) {
                       throw Error(one_line(e.what()));
                     }
                   });
                 });

}  // namespace
}  // namespace cbst
