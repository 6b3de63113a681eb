// cbst bench loader: images/s of the training input pipeline (PNG decode + random scale +
// 500 crop + flip + normalise) with 1 and 2 worker threads, on 2048x1024 PNGs (generated
// into a temporary folder unless --data is given). Prints a table and writes JSON.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/sample_rng.h"
#include "engine/check.h"
#include "engine/json.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

namespace {

using namespace cbst::data;
using cbst::Json;
using cbst::json_text;
namespace fs = std::filesystem;

struct BenchLoaderOptions {
  std::string data;  // KIND=PATH; empty: generate
  int images = 8;
  int width = 2048, height = 1024;
  int crop = 500;
  int epochs = 2;
  std::vector<int> workers = {1, 2};
  std::string json;
};

// Street-like content: smooth gradients, blocks and a little noise, so that the PNGs
// compress (and decode) like photographs rather than like noise or flat colour.
void generate_gta5_tree(const std::string& root, const BenchLoaderOptions& o) {
  fs::create_directories(root + "/images");
  fs::create_directories(root + "/labels");
  for (int i = 0; i < o.images; ++i) {
    SampleRng rng(1234, 0, uint64_t(i));
    Image im = Image::blank(o.width, o.height, 3);
    Labels lab = Labels::blank(o.width, o.height);
    for (int y = 0; y < o.height; ++y) {
      uint8_t* p = im.row(y);
      for (int x = 0; x < o.width; ++x) {
        const bool sky = y < o.height / 3, road = y > o.height * 2 / 3;
        const int block = ((x / 97) * 7 + (y / 61) * 3 + i) % 5;
        const int noise = int(rng.below(12));
        p[x * 3 + 0] = uint8_t(sky ? 70 + y / 16 : road ? 128 + noise : 60 + block * 30 + noise);
        p[x * 3 + 1] = uint8_t(sky ? 130 + y / 20 : road ? 64 + noise : 70 + block * 20 + noise);
        p[x * 3 + 2] = uint8_t(sky ? 180 : road ? 128 + noise : 70 + (x & 31) + noise);
        lab.ids[size_t(y) * o.width + x] = uint8_t(sky ? 23 : road ? 7 : block == 0 ? 26 : 11);
      }
    }
    char stem[16];
    std::snprintf(stem, sizeof stem, "%05d", i + 1);
    write_png(root + "/images/" + stem + ".png", im);
    PngWriteSpec spec{.width = o.width, .height = o.height, .channels = 1, .bit_depth = 8};
    spec.samples8 = std::move(lab.ids);
    spec.palette.assign(256, {0, 0, 0});
    for (const ClassInfo& c : class_table(ClassSpace::cityscapes19)) spec.palette[c.label_id] = c.color;
    write_png(root + "/labels/" + stem + ".png", spec);
  }
}

struct Row {
  int workers = 0;
  int64_t images = 0;
  double seconds = 0;
  double images_per_s = 0;
};

Row measure(const Dataset& ds, int workers, const BenchLoaderOptions& o) {
  Loader loader(ds, {.batch_size = 1, .workers = workers, .prefetch_batches = 4, .seed = 0,
                     .augment_params = {.crop_width = o.crop, .crop_height = o.crop}});
  Row r{workers, 0, 0, 0};
  const auto t0 = std::chrono::steady_clock::now();
  for (int e = 0; e < o.epochs; ++e) {
    loader.start_epoch(e);
    while (auto b = loader.next()) r.images += b->images.size(0);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.images_per_s = double(r.images) / r.seconds;
  return r;
}

void run_bench(const BenchLoaderOptions& o) {
  std::string tmp;
  std::string spec = o.data;
  if (spec.empty()) {
    tmp = (fs::temp_directory_path() / ("cbst_bench_loader_" + std::to_string(::getpid()))).string();
    std::fprintf(stderr, "generating %d %dx%d PNGs (GTA5 layout) in %s\n", o.images, o.width, o.height, tmp.c_str());
    generate_gta5_tree(tmp, o);
    spec = "gta5=" + tmp;
  }
  std::vector<Row> rows;
  double mean_bytes = 0;
  try {
    const Dataset ds = open_dataset(spec, {.split = "train"});
    // One untimed pass so that every run reads from the page cache alike.
    for (size_t i = 0; i < ds.size(); ++i) mean_bytes += double(read_file_bytes(ds.sample(i).image).size());
    mean_bytes /= double(ds.size());
    for (int w : o.workers) rows.push_back(measure(ds, w, o));
  } catch (...) {
    if (!tmp.empty()) fs::remove_all(tmp);
    throw;
  }
  if (!tmp.empty()) fs::remove_all(tmp);

  std::printf("loader: decode + random scale 0.7-1.3 + crop %d + flip + normalise, batch 1, %s (%.2f MB per file)\n",
              o.crop, o.data.empty() ? "generated 2048x1024 PNGs" : o.data.c_str(), mean_bytes / 1e6);
  std::printf("| workers | images | seconds | images/s |\n|--------:|-------:|--------:|---------:|\n");
  for (const Row& r : rows)
    std::printf("| %7d | %6lld | %7.2f | %8.2f |\n", r.workers, (long long)r.images, r.seconds, r.images_per_s);
  if (!o.json.empty()) {
    Json runs = Json::array();
    for (const Row& r : rows)
      runs.push_back({{"workers", r.workers}, {"images", r.images}, {"seconds", r.seconds}, {"images_per_s", r.images_per_s}});
    const Json js = {{"benchmark", "loader"}, {"source", o.data.empty() ? "generated" : o.data}, {"width", o.width},
                     {"height", o.height}, {"crop", o.crop}, {"mean_file_bytes", mean_bytes},
                     {"hardware_threads", std::thread::hardware_concurrency()}, {"runs", runs}};
    write_text_atomic(o.json, json_text(js, 2) + "\n");
    std::fprintf(stderr, "wrote %s\n", o.json.c_str());
  }
}

const cbst::cli::Command reg(
    {.parent = "bench", .name = "loader", .help = "Input pipeline throughput (decode, scale, crop, flip, normalise)"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<BenchLoaderOptions>();
      cmd.add_option("--data", o->data, "Dataset KIND=PATH to read (default: generate 2048x1024 PNGs)");
      cmd.add_option("--images", o->images, "Images to generate")->capture_default_str()->check(cbst::cli::Positive());
      cmd.add_option("--epochs", o->epochs, "Passes over the images per worker count")
          ->capture_default_str()
          ->check(cbst::cli::Positive());
      cmd.add_option("--crop", o->crop, "Crop size")->capture_default_str()->check(cbst::cli::Positive());
      cmd.add_option("--workers", o->workers, "Worker thread counts to measure")->capture_default_str();
      cmd.add_option("--json", o->json, "Write the results as JSON to this file");
      cmd.callback([o] { run_bench(*o); });
    });

}  // namespace
