// `cbst synth`: write the synthetic two-domain benchmark (data/synthetic.h) to disk in the
// GTA5 (source) and Cityscapes (target) layouts.
//
//   cbst synth --out DIR [--size N|HxW] [--source N] [--target-train N] [--target-val N]
//              [--seed S] [--style-gap G|LO,HI] [--workers N]
//
// Then `gta5=DIR/gta5` and `cityscapes=DIR/cityscapes` name the two domains.
#include <cstdio>
#include <memory>
#include <utility>
#include <string>

#include "data/synthetic.h"
#include "engine/check.h"
#include "tools/cli/registry.h"
#include "tools/cli/sizes.h"

namespace {

using namespace cbst;

struct SynthOptions {
  std::string out;
  std::string size = "128x256";
  int source = 300;
  int target_train = 300;
  int target_val = 100;
  uint64_t seed = 1;
  std::string style_gap = "0.65";
  int threads = 0;
};

void run(const SynthOptions& o) {
  const cli::Size2 size = cli::parse_size(o.size, "--size", 16, 8192);
  const int h = int(size.height), w = int(size.width);
  const data::SynthStyleGap gap = data::parse_style_gap(o.style_gap, "--style-gap");
  const data::SynthBenchmarkReport r = data::write_synth_benchmark(
      {.out = o.out,
       .params = {.height = h, .width = w, .seed = o.seed, .style_gap = gap},
       .source = o.source,
       .target_train = o.target_train,
       .target_val = o.target_val,
       .threads = o.threads});
  std::printf("wrote %lld files in %.1f s (%dx%d, seed %llu)\n", static_cast<long long>(r.files_written),
              r.seconds, h, w, static_cast<unsigned long long>(o.seed));
  std::printf("  source: gta5=%s (%d images)\n", r.gta5_root.c_str(), o.source);
  std::printf("  target: cityscapes=%s (train %d, val %d)\n", r.cityscapes_root.c_str(), o.target_train,
              o.target_val);
}

cli::Command reg({.parent = "",
                  .name = "synth",
                  .help = "Write the synthetic two-domain benchmark (GTA5 and Cityscapes layouts)"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<SynthOptions>();
                   cmd.add_option("--out", o->out, "Output folder (gets gta5/ and cityscapes/)")->required();
                   cmd.add_option("--size", o->size, "Image size N or HxW")->capture_default_str();
                   cmd.add_option("--source", o->source, "Source (GTA5-layout) images")->capture_default_str();
                   cmd.add_option("--target-train", o->target_train, "Target training images")
                       ->capture_default_str();
                   cmd.add_option("--target-val", o->target_val, "Target validation images")->capture_default_str();
                   cmd.add_option("--seed", o->seed, "Seed: same seed, same bytes")->capture_default_str();
                   cmd.add_option("--style-gap", o->style_gap,
                                  "Target appearance gap: G, or LO,HI drawn per image; 0 (source look) .. 1 (full target look)")
                       ->capture_default_str();
                   cmd.add_option("--workers", o->threads, "Writer threads (0: max(8, 2 x cores); writes wait on fsync)")->capture_default_str();
                   cmd.callback([o] { run(*o); });
                 });

}  // namespace
