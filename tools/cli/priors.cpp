// `cbst priors`: class-wise spatial priors from a labelled (source) dataset (DESIGN §7.5).
//
//   cbst priors --data KIND=PATH [--size HxW] [--sigma S] [--support S] [--list FILE]
//        [--split NAME] [--classes 19|16|13] [--workers N] --out prior.safetensors
//
// Without --size the grid is the first label map's size, divided by the smallest whole
// factor that brings its longer side to at most kDefaultGridSide: the prior is smooth (the
// 70-pixel kernel) and `adapt` resizes it to the target's labels anyway, so a full-size GTA5
// grid (19 planes of 1052×1914) would only cost memory.
//
// Writes `prior` f32 (C, H, W) (selftrain/spatial_prior.h) for `cbst pseudolabel --prior`
// and the CBST-SP methods, and prints one line per class: full-resolution pixels seen, their
// share, and where the prior peaks on the grid.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/label_map.h"
#include "engine/check.h"
#include "selftrain/spatial_prior.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/sizes.h"

namespace {

using namespace cbst;

struct PriorsOptions {
  std::string data;
  std::string size;
  double sigma = kSpatialPriorSigma;
  bool sigma_given = false;  // without --sigma: support / 6, so the support is ±3σ
  double support = kSpatialPriorSupport;
  std::string list_file;
  std::string split;  // empty: the spec's, else train
  int classes = 0;  // 0: 16 for SYNTHIA, 19 otherwise
  int threads = 0;
  std::string out;
};

// A \r-updated counter on a terminal; a line every 10% otherwise, so logs stay short.
std::function<void(size_t, size_t)> progress_printer() {
  const bool tty = ::isatty(2);
  return [tty](size_t done, size_t total) {
    if (tty) {
      std::fprintf(stderr, "\rlabel maps counted: %zu/%zu", done, total);
      if (done == total) std::fprintf(stderr, "\n");
    } else if (done == total || (done * 10 / total) != ((done - 1) * 10 / total)) {
      std::fprintf(stderr, "label maps counted: %zu/%zu\n", done, total);
    }
  };
}

void print_summary(const SpatialPriorResult& r, data::ClassSpace space) {
  const int64_t c_count = r.prior.size(0), h = r.prior.size(1), w = r.prior.size(2);
  const float* q = r.prior.data<float>();
  int64_t total = 0;
  for (int64_t n : r.pixels_seen) total += n;
  const std::vector<data::ClassInfo>& names = data::class_table(space);
  std::printf("%-14s %14s %8s %14s %13s\n", "class", "pixels seen", "share", "peak (y, x)", "peak/uniform");
  for (int64_t c = 0; c < c_count; ++c) {
    const std::string& name = names[size_t(c)].name;
    const int64_t seen = r.pixels_seen[size_t(c)];
    if (seen == 0) {
      std::printf("%-14s %14d %7.2f%% %14s %13s\n", name.c_str(), 0, 0.0, "never seen", "uniform");
      continue;
    }
    const float* plane = q + c * h * w;
    const int64_t peak = std::max_element(plane, plane + h * w) - plane;
    const std::string at = "(" + std::to_string(peak / w) + ", " + std::to_string(peak % w) + ")";
    std::printf("%-14s %14lld %7.2f%% %14s %13.3f\n", name.c_str(), (long long)seen,
                100.0 * double(seen) / double(total), at.c_str(), double(plane[peak]) * double(h * w));
  }
}

constexpr int64_t kDefaultGridSide = 512;

// The grid without --size, as the header says; says on stderr what it chose.
cli::Size2 default_grid(const data::Dataset& ds) {
  if (ds.size() == 0) CBST_THROW(ds.describe(), " has no label maps to count");
  const data::RawLabels first = ds.read_raw_labels(0);
  const int64_t h = first.height, w = first.width;
  const int64_t factor = (std::max(h, w) + kDefaultGridSide - 1) / kDefaultGridSide;
  const cli::Size2 grid{.height = (h + factor - 1) / factor, .width = (w + factor - 1) / factor};
  std::fprintf(stderr, "grid %lldx%lld: the first label map's size (%lldx%lld)%s; --size to choose another\n",
               (long long)grid.height, (long long)grid.width, (long long)h, (long long)w,
               factor > 1 ? (" divided by " + std::to_string(factor)).c_str() : "");
  return grid;
}

void run(PriorsOptions o) {
  if (!o.sigma_given) o.sigma = o.support / 6;
  const auto [spec, split] = cli::dataset_and_split(o.data, o.split, "train", "--data", "--split");
  const data::Dataset ds = data::open_dataset(spec, {.split = split, .list_file = o.list_file});
  const cli::Size2 grid =
      o.size.empty() ? default_grid(ds) : cli::parse_size(o.size, "--size", 1, 1 << 16, "128x256");
  const int64_t h = grid.height, w = grid.width;
  const int classes = o.classes != 0 ? o.classes : int(default_num_classes(ds));
  const data::ClassSpace space = data::class_space_for(classes);
  std::fprintf(stderr, "counting %s into a %lldx%lld grid, %d classes (%s)\n", ds.describe().c_str(),
               (long long)h, (long long)w, classes, data::class_space_name(space));

  const SpatialPriorResult r = compute_spatial_prior_with_stats(
      ds, {.height = h,
           .width = w,
           .sigma = o.sigma,
           .support = o.support,
           .num_classes = classes,
           .class_space = space,
           .threads = o.threads,
           .progress = progress_printer()});
  save_spatial_prior(o.out, r.prior,
                     {.sigma = o.sigma,
                      .support = o.support,
                      .image_height = r.image_height,
                      .image_width = r.image_width,
                      .images = int64_t(r.images),
                      .source = o.data,
                      .class_space = data::class_space_name(space)});
  print_summary(r, space);
  // The default sigma is 70/6 px and the image size a mean over the label maps: rounded.
  std::printf("wrote %s: prior f32 [%d, %lld, %lld] from %zu label maps (sigma %.1f px, support %.1f px at the "
              "mean image size %.0fx%.0f)\n",
              o.out.c_str(), classes, (long long)h, (long long)w, r.images, o.sigma, o.support,
              r.image_height, r.image_width);
}

const cbst::cli::Command reg(
    {.parent = "",
     .name = "priors",
     .help = "Class-wise spatial priors (CBST-SP) from a labelled dataset, as safetensors"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<PriorsOptions>();
      cmd.add_option("--data", o->data,
                     "Labelled source dataset as KIND=PATH[:SPLIT]: gta5=, synthia=, cityscapes=, bdd=, "
                     "list[:ENC]=IMAGES,LABELS")
          ->required();
      cmd.add_option("--size", o->size,
                     "the prior's grid N or HxW, e.g. 128x256 (smooth: a reduced grid suffices); default: the "
                     "first label map's size, divided by a whole factor to a longer side of at most 512");
      cmd.add_option("--sigma", o->sigma,
                     "Gaussian sigma in full-resolution pixels (default: support/6, i.e. 70/6)");
      cmd.add_option("--support", o->support, "Gaussian support (full width) in full-resolution pixels")
          ->capture_default_str();
      cmd.add_option("--list", o->list_file, "Optional list file ('image [label]' per line, relative to the root)");
      cmd.add_option("--split", o->split, "Dataset split (cityscapes/bdd: train, val, test); default train; the "
                                          "same as --data KIND=PATH:SPLIT");
      cmd.add_option("--classes", o->classes, "class space: 19 (Cityscapes), 16 (SYNTHIA), 13 (NTHU); "
                                              "0: 16 for SYNTHIA data, 19 for the rest");
      cmd.add_option("--workers", o->threads, "label-decoding threads (0: all cores)")->capture_default_str();
      cmd.add_option("--out", o->out, "output safetensors file")->required();
      cmd.callback([o, &cmd] {
        o->sigma_given = cmd.count("--sigma") > 0;
        run(*o);
      });
    });

}  // namespace
