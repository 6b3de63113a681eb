// The synthetic two-domain benchmark: one sample from its three stages (layout, objects,
// style), label conversion for writing, and the writer of the GTA5/Cityscapes layouts.
#include "data/synthetic.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <tuple>

#include <nlohmann/json.hpp>

#include "data/label_map.h"
#include "data/synthetic_draw.h"
#include "engine/check.h"
#include "engine/format.h"
#include "engine/json.h"

namespace cbst::data {

namespace fs = std::filesystem;

const char* synth_domain_name(SynthDomain domain) {
  return domain == SynthDomain::source ? "source" : "target";
}

namespace {

void check_size(int height, int width) {
  if (height < 16 || width < 16 || height > 8192 || width > 8192)
    CBST_THROW("synthetic benchmark: image size ", height, "x", width,
               " is out of range; use 16..8192 pixels a side (e.g. 128x256)");
}

}  // namespace

SynthSample synth_sample(SynthDomain domain, int64_t index, const SynthParams& params) {
  check_size(params.height, params.width);
  // Three independent streams per (seed, domain, index): drawing more objects never shifts
  // the layout of the same sample, and nothing depends on other samples.
  const uint64_t d = domain == SynthDomain::source ? 0 : 1;
  SampleRng layout_rng(params.seed, 4 * d + 1, uint64_t(index));
  SampleRng object_rng(params.seed, 4 * d + 2, uint64_t(index));
  SampleRng style_rng(params.seed, 4 * d + 3, uint64_t(index));

  synth::Canvas canvas(params.width, params.height);
  const synth::Scene scene = synth::make_scene(layout_rng, domain, params.width, params.height);
  synth::draw_background(canvas, scene, layout_rng);
  synth::draw_objects(canvas, scene, object_rng, domain);

  SynthSample out;
  out.image = synth::render_style(canvas, domain, style_rng, params.style_gap, out.style_gap);
  out.labels = Labels{params.width, params.height, std::move(canvas.cls)};
  return out;
}

SynthStyleGap parse_style_gap(const std::string& text, const std::string& flag) {
  auto number = [&](const std::string& part) {
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != part.size() || !(v >= 0 && v <= 1))
      CBST_THROW(flag, " '", text, "' is not a gap G or a range LO,HI with 0 <= LO <= HI <= 1 (e.g. 1 or 0.3,1)");
    return v;
  };
  const size_t comma = text.find(',');
  if (comma == std::string::npos) {
    const double g = number(text);
    return {g, g};
  }
  const SynthStyleGap gap{number(text.substr(0, comma)), number(text.substr(comma + 1))};
  if (gap.low > gap.high)
    CBST_THROW(flag, " '", text, "' has LO above HI; give the range as LO,HI (e.g. 0.3,1)");
  return gap;
}

std::string style_gap_text(const SynthStyleGap& gap) {
  return gap.low == gap.high ? format_g(gap.low) : format_g(gap.low) + "," + format_g(gap.high);
}

Labels train_ids_to_label_ids(const Labels& train_ids) {
  std::array<uint8_t, 256> lut{};  // 0 = "unlabeled" for ignore and anything unknown
  for (const ClassInfo& c : class_table(ClassSpace::cityscapes19)) lut[size_t(c.train_id19)] = uint8_t(c.label_id);
  Labels out{train_ids.width, train_ids.height, std::vector<uint8_t>(train_ids.ids.size())};
  for (size_t i = 0; i < out.ids.size(); ++i) out.ids[i] = lut[train_ids.ids[i]];
  return out;
}

std::vector<std::array<uint8_t, 3>> label_id_palette() {
  std::vector<std::array<uint8_t, 3>> palette(256, {0, 0, 0});
  for (const ClassInfo& c : class_table(ClassSpace::cityscapes19)) palette[size_t(c.label_id)] = c.color;
  return palette;
}

std::string synth_gta5_stem(int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%05lld", static_cast<long long>(index + 1));
  return buf;
}

std::string synth_cityscapes_stem(const std::string& city, int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "_000000_%06lld", static_cast<long long>(index));
  return city + buf;
}

namespace {

struct Job {
  SynthDomain domain;
  int64_t index;      // generator index
  std::string image;  // paths
  std::string label;
  bool palette;  // GTA5: palette PNG; Cityscapes: grey PNG
};

void make_dir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    CBST_THROW("cannot create output folder '", path, "': ", ec ? ec.message() : "not a folder",
               "; choose a writable --out");
}

Json style_gap_json(const SynthStyleGap& g) {
  if (g.low == g.high) return g.low;
  return Json::array({g.low, g.high});
}

std::string params_json(const SynthBenchmarkOptions& o) {
  const Json js = {{"generator", "cbst synth"}, {"version", 1}, {"seed", o.params.seed}, {"height", o.params.height},
                   {"width", o.params.width}, {"style_gap", style_gap_json(o.params.style_gap)}, {"source", o.source},
                   {"target_train", o.target_train}, {"target_val", o.target_val},
                   {"target_val_index_base", kSynthValIndexBase}, {"city", o.city}};
  return json_text(js, 2) + "\n";
}

}  // namespace

SynthBenchmarkReport write_synth_benchmark(const SynthBenchmarkOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  check_size(o.params.height, o.params.width);
  if (o.source < 0 || o.target_train < 0 || o.target_val < 0)
    CBST_THROW("synthetic benchmark: image counts must be >= 0 (source ", o.source, ", target-train ",
               o.target_train, ", target-val ", o.target_val, ")");
  if (o.out.empty()) CBST_THROW("synthetic benchmark: no output folder given (--out DIR)");
  if (o.city.empty() || o.city.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
                            std::string::npos)
    CBST_THROW("synthetic benchmark: city name '", o.city, "' must be letters, digits or '-' (it is part of ",
               "Cityscapes file names, which split on '_')");

  SynthBenchmarkReport report;
  report.gta5_root = (fs::path(o.out) / "gta5").string();
  report.cityscapes_root = (fs::path(o.out) / "cityscapes").string();
  make_dir(o.out);
  // create_directories succeeds on an existing read-only folder: probe with a real write.
  const std::string probe = (fs::path(o.out) / ".cbst_synth_probe").string();
  try {
    write_text_atomic(probe, "probe\n");
  } catch (const std::exception&) {
    CBST_THROW("cannot write into output folder '", o.out, "'; choose a writable --out");
  }
  fs::remove(probe);

  std::vector<Job> jobs;
  const std::string gi = report.gta5_root + "/images", gl = report.gta5_root + "/labels";
  if (o.source > 0) {
    make_dir(gi);
    make_dir(gl);
  }
  for (int i = 0; i < o.source; ++i)
    jobs.push_back({SynthDomain::source, i, gi + "/" + synth_gta5_stem(i) + ".png",
                    gl + "/" + synth_gta5_stem(i) + ".png", true});
  for (const auto& [split, count, base] :
       {std::tuple{"train", o.target_train, int64_t(0)}, std::tuple{"val", o.target_val, kSynthValIndexBase}}) {
    if (count == 0) continue;
    const std::string img_dir = report.cityscapes_root + "/leftImg8bit/" + split + "/" + o.city;
    const std::string gt_dir = report.cityscapes_root + "/gtFine/" + split + "/" + o.city;
    make_dir(img_dir);
    make_dir(gt_dir);
    for (int j = 0; j < count; ++j) {
      const std::string stem = synth_cityscapes_stem(o.city, j);
      jobs.push_back({SynthDomain::target, base + j, img_dir + "/" + stem + "_leftImg8bit.png",
                      gt_dir + "/" + stem + "_gtFine_labelIds.png", false});
    }
  }

  const std::vector<std::array<uint8_t, 3>> palette = label_id_palette();
  std::mutex error_mutex;
  std::string first_error;
  // Each atomic write ends in an fsync, so writing waits on the disk more than it computes:
  // more threads than cores overlap those waits (8 threads: 13 s -> 8 s for the defaults on 2 cores).
  const int threads = o.threads > 0 ? o.threads : std::max(8, 2 * omp_get_max_threads());
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
  for (int64_t k = 0; k < int64_t(jobs.size()); ++k) {
    try {
      const Job& job = jobs[size_t(k)];
      const SynthSample s = synth_sample(job.domain, job.index, o.params);
      const Labels ids = train_ids_to_label_ids(s.labels);
      write_png(job.image, s.image);
      if (job.palette) {
        PngWriteSpec spec{.width = ids.width, .height = ids.height, .channels = 1, .bit_depth = 8};
        spec.samples8 = ids.ids;
        spec.palette = palette;
        write_png(job.label, spec);
      } else {
        write_png_grey(job.label, ids);
      }
    } catch (const std::exception& e) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) CBST_THROW("synthetic benchmark: ", first_error);

  write_text_atomic((fs::path(o.out) / "synth.json").string(), params_json(o));
  report.files_written = int64_t(jobs.size()) * 2 + 1;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace cbst::data
