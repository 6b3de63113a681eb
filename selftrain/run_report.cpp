#include "selftrain/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/label_map.h"
#include "engine/json.h"
#include "selftrain/eval_record.h"
#include "selftrain/report.h"
#include "selftrain/run_dir.h"

namespace cbst {

namespace fs = std::filesystem;
using report::html_escape;
using report::Series;

namespace {

constexpr double kNaN = kNotMeasured;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The file's JSON; null when it is missing or not JSON (a report shows what it can).
Json read_json(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Json();
  Json j = Json::parse(read_text(path), nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json() : j;
}

// Member `key` of `j`; NaN when absent or not a number (NaN is written as null).
double number(const Json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  const auto v = j.find(key);
  return v != j.end() && v->is_number() ? v->get<double>() : kNaN;
}
std::vector<double> numbers(const Json& j, const char* key) {
  std::vector<double> out;
  if (!j.is_object()) return out;
  const auto v = j.find(key);
  if (v != j.end() && v->is_array())
    for (const Json& e : *v) out.push_back(e.is_number() ? e.get<double>() : kNaN);
  return out;
}
double at(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : kNaN; }

std::string fmt(double v, int decimals = 1) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// One evaluation of the run: eval/initial.json (round 0), eval/epoch_<n>.json or
// eval/round_<n>.json.
struct Evaluation {
  int64_t index = 0;
  std::vector<std::string> names = {};
  std::vector<double> iou = {};
  double miou = kNaN;
};

std::vector<Evaluation> read_evaluations(const fs::path& dir, const std::string& unit) {
  std::vector<Evaluation> out;
  std::error_code ec;
  if (!fs::is_directory(dir / "eval", ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir / "eval", ec)) {
    const std::string name = entry.path().filename().string();
    int64_t index = -1;
    if (name == "initial.json" && unit == "round") index = 0;
    const std::string prefix = unit + "_";
    if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() + 5 && name.ends_with(".json")) {
      const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 5);
      if (digits.find_first_not_of("0123456789") == std::string::npos) index = std::stoll(digits);
    }
    if (index < 0) continue;
    const Json j = read_json(entry.path());
    if (!j.is_object() || !j.contains("classes")) continue;
    Evaluation e{.index = index, .miou = number(j, "miou")};
    for (const Json& c : j["classes"]) {
      e.names.push_back(c.value("name", std::string("?")));
      e.iou.push_back(number(c, "iou"));
    }
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const Evaluation& a, const Evaluation& b) { return a.index < b.index; });
  return out;
}

// Per class and evaluation, IoU (%) shaded by its value; mIoU last.
std::string evaluation_table_html(const std::vector<Evaluation>& evals, const std::string& unit) {
  if (evals.empty()) return "";
  std::string s = "<table class=\"small\"><thead><tr><th class=\"method\">class</th>";
  for (const Evaluation& e : evals)
    s += "<th>" + (unit == "round" && e.index == 0 ? std::string("start") : unit + " " + std::to_string(e.index)) +
         "</th>";
  s += "</tr></thead><tbody>";
  for (size_t c = 0; c < evals.back().names.size(); ++c) {
    s += "<tr><td class=\"method\">" + html_escape(evals.back().names[c]) + "</td>";
    for (const Evaluation& e : evals) {
      const double v = at(e.iou, c);
      s += "<td style=\"background:" + report::heat_color(v, 110, 180, 110) + "\">" + fmt(100 * v) + "</td>";
    }
    s += "</tr>";
  }
  s += "<tr><td class=\"method\"><b>mIoU</b></td>";
  for (const Evaluation& e : evals) s += "<td><b>" + fmt(100 * e.miou, 2) + "</b></td>";
  return s + "</tr></tbody></table>";
}

// The training loss of every logged step; one series per round for adapt.
std::string loss_chart_svg(const std::vector<LossPoint>& points, int64_t log_every) {
  if (points.empty()) return "<p class=\"note\">No step logged yet.</p>";
  report::LineChart c{.title = "Training loss", .x_label = "step", .y_label = "loss (mean over " +
                                                                                 std::to_string(log_every) + " steps)",
                      .width = 900, .height = 320, .y_from_zero = true};
  std::vector<int64_t> rounds;
  for (const LossPoint& p : points) {
    c.x.push_back(double(p.step));
    if (std::find(rounds.begin(), rounds.end(), p.round) == rounds.end()) rounds.push_back(p.round);
  }
  const size_t every = std::max<size_t>(1, points.size() / 8);
  for (size_t i = 0; i < points.size(); ++i)
    c.x_tick_labels.push_back((i + 1) % every == 0 ? std::to_string(points[i].step) : "");
  for (size_t k = 0; k < rounds.size(); ++k) {
    Series s{.name = rounds[k] > 0 ? "round " + std::to_string(rounds[k]) : "train loss",
             .y = std::vector<double>(points.size(), kNaN), .color = report::palette(k)};
    for (size_t i = 0; i < points.size(); ++i)
      if (points[i].round == rounds[k]) s.y[i] = points[i].loss;
    c.series.push_back(std::move(s));
  }
  return report::svg_line_chart(c);
}

std::string miou_chart_svg(const std::vector<Evaluation>& evals, const std::string& unit) {
  if (evals.empty()) return "<p class=\"note\">No evaluation: the run has no --eval set.</p>";
  report::LineChart c{.title = "Validation mIoU after each " + unit, .x_label = unit, .y_label = "mIoU (%)",
                      .width = 760, .height = 320};
  Series s{.name = "mIoU", .color = report::palette(0)};
  for (const Evaluation& e : evals) {
    c.x.push_back(double(e.index));
    c.x_tick_labels.push_back(unit == "round" && e.index == 0 ? "start" : std::to_string(e.index));
    s.y.push_back(100 * e.miou);
  }
  c.series.push_back(std::move(s));
  return report::svg_line_chart(c);
}

// The colourised pseudo-labels of a round (rounds/<r>/pseudo/*_color.png), a few of them.
std::string previews_html(const fs::path& dir, int64_t round) {
  const fs::path folder = dir / "rounds" / std::to_string(round) / "pseudo";
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.path().filename().string().ends_with("_color.png")) files.push_back(entry.path());
  if (files.empty()) return "";
  std::sort(files.begin(), files.end());
  files.resize(std::min<size_t>(files.size(), 4));
  std::string s = "<h3>Pseudo-labels of round " + std::to_string(round) +
                  " (black: no label)</h3><table class=\"panels\"><tr>";
  for (const fs::path& f : files)
    s += "<td><img width=\"240\" alt=\"" + html_escape(f.filename().string()) + "\" src=\"" +
         report::png_file_data_uri(f.string()) + "\"><br>" + html_escape(f.filename().string()) + "</td>";
  return s + "</tr></table>";
}

}  // namespace

AdaptRunRecord read_adapt_run(const std::string& dir) {
  AdaptRunRecord r;
  r.initial_miou = number(read_json(fs::path(dir) / "eval" / "initial.json"), "miou");
  for (int64_t k = 1;; ++k) {
    const fs::path round = fs::path(dir) / "rounds" / std::to_string(k);
    const Json j = read_json(round / "summary.json");
    if (!j.is_object()) break;
    RoundRecord rr{.round = k, .miou = number(j, "miou"), .portion = number(j, "portion"), .lr = number(j, "lr"),
                   .coverage = number(j, "pseudo_coverage"), .accuracy = number(j, "pseudo_accuracy"),
                   .train_loss = number(j, "train_loss"), .source_images = number(j, "source_images"),
                   .class_coverage = numbers(j, "class_coverage"), .class_accuracy = numbers(j, "class_accuracy"),
                   .thresholds = numbers(j, "thresholds"),
                   .pool_sizes = numbers(read_json(round / "thresholds.json"), "pool_sizes")};
    r.rounds.push_back(std::move(rr));
  }
  return r;
}

std::vector<LossPoint> read_loss_points(const std::string& dir) {
  std::vector<LossPoint> out;
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.contains("event") || !j.contains("loss") || !j.contains("step")) continue;
    out.push_back({.step = j.value("step", int64_t(0)), .loss = number(j, "loss"), .round = j.value("round", int64_t(0))});
  }
  return out;
}

std::string class_abbreviation(const std::string& name) {
  static const std::map<std::string, std::string> kShort = {
      {"sidewalk", "side"}, {"building", "build"}, {"traffic light", "light"}, {"traffic sign", "sign"},
      {"vegetation", "veg"}, {"terrain", "terr"}, {"person", "pers"}, {"motorcycle", "motor"}, {"bicycle", "bike"}};
  const auto it = kShort.find(name);
  return it != kShort.end() ? it->second : name.substr(0, 5);
}

const char* report_style() {
  return R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; line-height: 1.45; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.sub, p.note { color: #555; margin: 4px 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 6px; text-align: right; border-bottom: 1px solid #eee; }
th { font-weight: 600; color: #333; }
th.method, td.method { text-align: left; white-space: nowrap; }
table.iou th.cls { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; height: 84px;
                   font-weight: 500; }
table.iou td.miou, table.iou th.miou { border-left: 2px solid #bbb; font-weight: 700; }
tr.oracle td { color: #222; font-style: italic; border-top: 2px solid #ccc; }
td.best { font-weight: 700; text-decoration: underline; }
.flex { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.card { background: #fff; }
table.small { font-size: 12px; }
table.small td, table.small th { padding: 2px 5px; }
.swatches { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 8px 0 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #999; vertical-align: -2px;
          margin-right: 4px; }
table.panels td { padding: 4px; border: none; }
table.panels th { text-align: center; font-weight: 600; padding: 4px; }
table.panels img { display: block; image-rendering: pixelated; max-width: 100%; }
pre { background: #f4f4f4; padding: 10px 12px; white-space: pre-wrap; word-break: break-all; font-size: 12px;
      margin: 0; }
footer { color: #777; font-size: 12px; margin-top: 32px; }
)";
}

std::string round_table_html(const AdaptRunRecord& run) {
  std::string s = "<table class=\"small\"><thead><tr><th>round</th><th>portion</th><th>source images</th>"
                  "<th>lr</th><th>labelled</th><th>correct</th><th>train loss</th><th>mIoU after</th></tr></thead>"
                  "<tbody>";
  if (std::isfinite(run.initial_miou))
    s += "<tr><td>0 (start)</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>" +
         fmt(100 * run.initial_miou) + "</td></tr>";
  for (const RoundRecord& rr : run.rounds)
    s += "<tr><td>" + std::to_string(rr.round) + "</td><td>" + fmt(rr.portion, 2) + "</td><td>" +
         fmt(rr.source_images, 0) + "</td><td>" + fmt(rr.lr, 4) + "</td><td>" + fmt(100 * rr.coverage) +
         "%</td><td>" + fmt(100 * rr.accuracy) + "%</td><td>" + fmt(rr.train_loss, 3) + "</td><td>" +
         fmt(100 * rr.miou) + "</td></tr>";
  return s + "</tbody></table>";
}

std::string pseudo_label_class_table_html(const AdaptRunRecord& run, const std::vector<std::string>& names,
                                          const std::string& label, const std::string& color) {
  std::string s = "<div class=\"card\"><table class=\"small\"><thead><tr><th class=\"method\" style=\"color:" +
                  html_escape(color) + "\">" + html_escape(label) + "</th>";
  for (const RoundRecord& rr : run.rounds)
    s += "<th>r" + std::to_string(rr.round) + " cov</th><th>r" + std::to_string(rr.round) + " acc</th>";
  s += "</tr></thead><tbody>";
  for (size_t c = 0; c < names.size(); ++c) {
    s += "<tr><td class=\"method\">" + html_escape(names[c]) + "</td>";
    for (const RoundRecord& rr : run.rounds) {
      const double cov = at(rr.class_coverage, c), accuracy = at(rr.class_accuracy, c);
      s += "<td style=\"background:" + report::heat_color(std::sqrt(cov * 4), 33, 102, 172) + "\">" +
           fmt(100 * cov, 2) + "</td><td style=\"background:" + report::heat_color(accuracy) + "\">" +
           fmt(100 * accuracy, 0) + "</td>";
    }
    s += "</tr>";
  }
  return s + "</tbody></table></div>";
}

std::string threshold_chart_svg(const AdaptRunRecord& run, const std::vector<std::string>& names,
                                const std::string& title, bool log_y) {
  report::LineChart c{.title = title, .x_label = "class", .y_label = "threshold", .width = 1200, .height = 280,
                      .y_from_zero = !log_y, .log_y = log_y};
  for (size_t k = 0; k < names.size(); ++k) {
    c.x.push_back(double(k));
    c.x_tick_labels.push_back(class_abbreviation(names[k]));
  }
  // An empty pool's threshold is the placeholder 1.0, not a measurement: a gap in the
  // round's line and a hollow marker of its own.
  Series empty{.name = "empty pool (1.0, no pixel)", .y = std::vector<double>(names.size(), kNaN),
               .color = "#999999", .markers_only = true};
  bool any_empty = false;
  for (size_t r = 0; r < run.rounds.size(); ++r) {
    std::vector<double> y = run.rounds[r].thresholds;
    for (size_t k = 0; k < y.size(); ++k)
      if (at(run.rounds[r].pool_sizes, k) == 0) {
        y[k] = kNaN;
        if (k < empty.y.size()) empty.y[k] = 1.0;
        any_empty = true;
      }
    c.series.push_back({.name = "round " + std::to_string(run.rounds[r].round) + " (p = " +
                                fmt(run.rounds[r].portion, 2) + ")",
                        .y = y, .color = report::palette(r + 3)});
  }
  if (any_empty) c.series.push_back(empty);
  return report::svg_line_chart(c);
}

std::string run_report_html(const std::string& dir_text) {
  const fs::path dir(dir_text);
  const std::string config = read_text(dir / "config.toml");
  const std::map<std::string, std::string> options = config_values(config);
  auto option = [&](const char* key, const std::string& fallback = "") {
    const auto it = options.find(key);
    return it == options.end() || it->second.empty() ? fallback : it->second;
  };
  const bool adapt = config.find("[adapt]") != std::string::npos ||
                     (config.find("[train]") == std::string::npos && fs::exists(dir / "rounds"));
  const std::string unit = adapt ? "round" : "epoch";
  const int64_t planned = std::atoll(option(adapt ? "rounds" : "epochs", "0").c_str());
  const Json summary = read_json(dir / "summary.json");
  const bool finished = summary.is_object();
  const std::vector<Evaluation> evals = read_evaluations(dir, unit);
  const AdaptRunRecord rounds = adapt ? read_adapt_run(dir.string()) : AdaptRunRecord{};
  int64_t done = 0;
  if (adapt) {
    done = int64_t(rounds.rounds.size());
  } else {
    std::ifstream in(dir / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.value("event", "") == "epoch") done = std::max(done, j.value("epoch", int64_t(0)));
    }
  }

  const std::string title = std::string("cbst ") + (adapt ? "adapt" : "train") + ": " + dir.filename().string();
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
                  html_escape(title) + "</title><style>" + report_style() + "</style></head><body><main>";
  h += "<h1>" + html_escape(title) + "</h1>";
  std::string what = option("model", "?") + " · ";
  what += adapt ? option("method", "cbst") + " from " + option("source") + " to " + option("target")
                : "on " + option("data");
  h += "<p class=\"sub\">" + html_escape(what) + " · " + html_escape(option("device", "cpu")) + " · " +
       (finished ? "finished: " : "in progress or interrupted: ") + std::to_string(done) + " of " +
       std::to_string(planned) + " " + unit + "s</p>";

  // The numbers a reader looks for first.
  double best = kNaN, last = kNaN;
  int64_t best_index = 0;
  for (const Evaluation& e : evals) {
    if (adapt && e.index == 0) continue;  // the starting model is not a candidate
    if (best_index == 0 || e.miou > best) best = e.miou, best_index = e.index;
    last = e.miou;
  }
  h += "<table class=\"small\"><tbody>";
  if (adapt) h += "<tr><td class=\"method\">start (round 0)</td><td>mIoU " + fmt(100 * rounds.initial_miou, 2) + "</td></tr>";
  if (best_index > 0)
    h += "<tr><td class=\"method\">best: " + unit + " " + std::to_string(best_index) + " (checkpoints/best.safetensors)" +
         "</td><td>mIoU " + fmt(100 * best, 2) + "</td></tr>";
  h += "<tr><td class=\"method\">last evaluated " + unit + "</td><td>mIoU " + fmt(100 * last, 2) + "</td></tr>";
  h += "</tbody></table>";

  h += "<h2>Validation mIoU</h2>" + miou_chart_svg(evals, unit);
  if (!evals.empty())
    h += "<h3>IoU (%) per class after each evaluated " + unit + "</h3>" + evaluation_table_html(evals, unit);
  h += "<h2>Training loss</h2>" +
       loss_chart_svg(read_loss_points(dir.string()), std::atoll(option("log-every", "20").c_str()));

  if (adapt) {
    const int classes = std::atoi(option("classes", "19").c_str());
    std::vector<std::string> names;
    for (const data::ClassInfo& c : data::class_table(data::class_space_for(classes == 16 ? 16 : 19)))
      names.push_back(c.name);
    const std::string method = option("method", "cbst");
    h += "<h2>Pseudo-labels</h2>";
    if (method == "source-only") {
      h += "<p class=\"note\">--method source-only: no pseudo-labels.</p>" + round_table_html(rounds);
    } else {
      h += "<p class=\"note\">Per round: the share of all target pixels that got a pseudo-label and how many of them "
           "are correct against the target ground truth (a diagnostic when the target has labels; training never "
           "sees it).</p>" +
           round_table_html(rounds);
      h += "<h3>Per class and round: labelled share of all target pixels (%) / accuracy (%)</h3><div class=\"flex\">" +
           pseudo_label_class_table_html(rounds, names, method, report::palette(0)) + "</div>";
      h += "<h3>Thresholds</h3>" +
           threshold_chart_svg(rounds, names, "class thresholds", method.size() > 3 && method.ends_with("-sp"));
      if (!rounds.rounds.empty()) h += previews_html(dir, rounds.rounds.back().round);
    }
  }
  h += "<h2>Configuration</h2><pre>" + html_escape(config) + "</pre>";
  h += "<footer>Written by cbst " + std::string(cbst_version()) + " at " + timestamp_now() +
       " from the run folder " + html_escape(dir.string()) +
       " (summary.json, metrics.jsonl, eval/, rounds/). Self-contained: no scripts, no network.</footer>";
  return h + "</main></body></html>\n";
}

void write_run_report(const std::string& dir) {
  try {
    data::write_text_atomic((fs::path(dir) / "report.html").string(), run_report_html(dir));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cbst: warning: %s/report.html not written: %s\n", dir.c_str(), e.what());
  }
}

}  // namespace cbst
