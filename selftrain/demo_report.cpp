#include "selftrain/demo_report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>

#include "data/label_map.h"
#include "engine/check.h"
#include "engine/format.h"
#include "selftrain/crst.h"
#include "selftrain/report.h"
#include "selftrain/run_report.h"

namespace cbst {

namespace fs = std::filesystem;
using report::html_escape;
using report::Series;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(double v, int decimals = 1) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The self-training methods of the demo, with their colours in every chart.
struct AdaptRun {
  std::string name, label, color;
};
const std::vector<AdaptRun>& adapt_runs() {
  static const std::vector<AdaptRun> runs = {
      {"st", "ST", report::palette(1)}, {"cbst", "CBST", report::palette(0)}, {"cbst-sp", "CBST-SP", report::palette(2)}};
  return runs;
}
const std::string kSourceColor = "#777777";
const std::string kAdabnColor = "#B8860B";
const std::string kOracleColor = "#7B3294";

double at(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : kNaN; }

std::vector<std::string> class_names(const std::vector<DemoMethodResult>& methods) {
  std::vector<std::string> names;
  if (!methods.empty())
    for (const data::ClassScore& c : methods[0].eval.classes) names.push_back(c.name);
  return names;
}

std::string iou_table_html(const std::vector<DemoMethodResult>& methods) {
  const std::vector<std::string> names = class_names(methods);
  // The best of the four non-oracle rows per column, underlined.
  std::vector<double> best(names.size() + 1, -1);
  for (const DemoMethodResult& m : methods) {
    if (m.name == "oracle") continue;
    for (size_t c = 0; c < names.size(); ++c) best[c] = std::max(best[c], m.eval.classes[c].iou);
    best[names.size()] = std::max(best[names.size()], m.eval.miou);
  }
  std::string s = "<table class=\"iou\"><thead><tr><th class=\"method\">Method</th>";
  for (const std::string& n : names) s += "<th class=\"cls\" title=\"" + html_escape(n) + "\">" + html_escape(n) + "</th>";
  s += "<th class=\"miou\">mIoU</th></tr></thead><tbody>";
  for (const DemoMethodResult& m : methods) {
    const bool oracle = m.name == "oracle";
    s += std::string("<tr") + (oracle ? " class=\"oracle\"" : "") + "><td class=\"method\">" + html_escape(m.label) + "</td>";
    for (size_t c = 0; c < names.size(); ++c) {
      const double v = m.eval.classes[c].iou;
      const bool is_best = !oracle && v == best[c] && v > 0;
      s += "<td" + std::string(is_best ? " class=\"best\"" : "") + " style=\"background:" + report::heat_color(v, 110, 180, 110) +
           "\">" + fmt(100 * v) + "</td>";
    }
    const bool is_best = !oracle && m.eval.miou == best[names.size()];
    s += "<td class=\"miou" + std::string(is_best ? " best" : "") + "\">" + fmt(100 * m.eval.miou) + "</td></tr>";
  }
  return s + "</tbody></table>";
}

// Whether the paper's ordering (source-only < ST < CBST ≤ CBST-SP, oracle above all)
// appears in this run, and which comparisons fail: stated plainly either way.
std::string ordering_note(const std::vector<DemoMethodResult>& methods) {
  std::map<std::string, const DemoMethodResult*> by;
  for (const DemoMethodResult& m : methods) by[m.name] = &m;
  for (const std::string& n : kDemoMethods)
    if (!by.count(n)) return "";
  struct Check {
    const char *lower, *higher;
    bool strict;
  };
  const Check checks[] = {{"source-only", "st", true},     {"source-only", "cbst", true}, {"source-only", "cbst-sp", true},
                          {"st", "cbst", true},             {"cbst", "cbst-sp", false},    {"st", "oracle", true},
                          {"cbst", "oracle", true},         {"cbst-sp", "oracle", true}};
  std::string failed;
  for (const Check& c : checks) {
    const DemoMethodResult &lo = *by[c.lower], &hi = *by[c.higher];
    const double a = std::round(1000 * lo.eval.miou), b = std::round(1000 * hi.eval.miou);  // to 0.1 point
    if (c.strict ? a < b : a <= b) continue;
    failed += std::string(failed.empty() ? "" : "; ") + lo.label + " " + fmt(100 * lo.eval.miou) + " is not " +
              (c.strict ? "below " : "at or below ") + hi.label + " " + fmt(100 * hi.eval.miou);
  }
  const double gap = by["oracle"]->eval.miou - by["source-only"]->eval.miou;
  const std::string closed =
      gap > 0 ? " CBST-SP closes " +
                    fmt(gap_share_percent(by["source-only"]->eval.miou, by["cbst-sp"]->eval.miou,
                                          by["oracle"]->eval.miou), 0) +
                    "% of the gap between source-only and the oracle."
              : "";
  // What needs no labels: the target's batch-norm statistics alone.
  const std::string adabn =
      by["cbst-sp"]->eval.miou > by["source-only"]->eval.miou
          ? " Of CBST-SP's " + fmt(100 * (by["cbst-sp"]->eval.miou - by["source-only"]->eval.miou)) +
                " points over source-only, the target's batch-norm statistics alone (AdaBN, no labels) give " +
                fmt(100 * (by["adabn"]->eval.miou - by["source-only"]->eval.miou)) + " and the pseudo-labels " +
                fmt(100 * (by["cbst-sp"]->eval.miou - by["adabn"]->eval.miou)) + "."
          : "";
  return closed + adabn + (failed.empty() ? " The ordering the paper reports (source only &lt; ST &lt; CBST ≤ CBST-SP, oracle above "
                          "all) holds in this run."
                        : " The ordering the paper reports (source only &lt; ST &lt; CBST ≤ CBST-SP, oracle above "
                          "all) does <b>not</b> fully hold in this run: " + html_escape(failed) +
                              ". The per-round numbers below show where it comes from.");
}

const DemoMethodResult* find_method(const std::vector<DemoMethodResult>& methods, const std::string& name) {
  for (const DemoMethodResult& m : methods)
    if (m.name == name) return &m;
  return nullptr;
}

double ground_truth_share(const data::EvalResult& e, size_t c) {
  return e.valid_pixels > 0 ? double(e.classes[c].ground_truth_pixels) / double(e.valid_pixels) : 0.0;
}

// Per class: the val share, ST / CBST / CBST-SP IoU and CBST − ST, rare classes first.
std::string rare_class_table(const std::vector<DemoMethodResult>& methods) {
  const DemoMethodResult *st = find_method(methods, "st"), *cbst = find_method(methods, "cbst"),
                         *sp = find_method(methods, "cbst-sp");
  if (!st || !cbst) return "";
  std::string s = "<table class=\"small\"><thead><tr><th class=\"method\">class</th><th>val pixels</th><th>ST</th>"
                  "<th>CBST</th><th>CBST-SP</th><th>CBST − ST</th></tr></thead><tbody>";
  for (int pass = 0; pass < 2; ++pass)
    for (size_t c = 0; c < st->eval.classes.size(); ++c) {
      const double share = ground_truth_share(st->eval, c);
      const bool rare = share > 0 && share < kRareClassShare;
      if (rare != (pass == 0)) continue;
      const double d = cbst->eval.classes[c].iou - st->eval.classes[c].iou;
      s += std::string("<tr") + (rare ? " style=\"font-weight:600\"" : "") + "><td class=\"method\">" +
           html_escape(st->eval.classes[c].name) + (rare ? " (rare)" : "") + "</td><td>" + fmt(100 * share, 2) +
           "%</td><td>" + fmt(100 * st->eval.classes[c].iou) + "</td><td>" + fmt(100 * cbst->eval.classes[c].iou) +
           "</td><td>" + (sp ? fmt(100 * sp->eval.classes[c].iou) : "–") + "</td><td style=\"color:" +
           (d > 0 ? "#1a7f37" : d < 0 ? "#b42318" : "#555") + "\">" + (d > 0 ? "+" : "") + fmt(100 * d) + "</td></tr>";
    }
  return s + "</tbody></table>";
}

std::string miou_chart(const std::vector<DemoMethodResult>& methods, const std::map<std::string, AdaptRunRecord>& runs,
                       int64_t rounds) {
  // The rounds are evaluated as the table is (one scale, no flip), so each line ends on its row.
  report::LineChart c{.title = "mIoU on the target val split after each round",
                      .x_label = "self-training round",
                      .y_label = "mIoU (%)", .width = 760, .height = 340};
  for (int64_t r = 0; r <= rounds; ++r) {
    c.x.push_back(double(r));
    c.x_tick_labels.push_back(r == 0 ? "start" : std::to_string(r));
  }
  for (const AdaptRun& a : adapt_runs()) {
    const AdaptRunRecord& run = runs.at(a.name);
    report::Series s{.name = a.label, .y = {100 * run.initial_miou}, .color = a.color};
    for (const RoundRecord& rr : run.rounds) s.y.push_back(100 * rr.miou);
    c.series.push_back(s);
  }
  for (const DemoMethodResult& m : methods) {
    if (m.name == "source-only") c.references.push_back({"Source only", 100 * m.eval.miou, kSourceColor});
    if (m.name == "adabn") c.references.push_back({"AdaBN", 100 * m.eval.miou, kAdabnColor});
    if (m.name == "oracle") c.references.push_back({"Oracle", 100 * m.eval.miou, kOracleColor});
  }
  return report::svg_line_chart(c);
}

std::string pseudo_label_section(const std::map<std::string, AdaptRunRecord>& runs, const std::vector<std::string>& names,
                                 int64_t target_pixels) {
  std::vector<std::string> abbrev;
  for (const std::string& n : names) abbrev.push_back(class_abbreviation(n));
  std::string s;
  // Totals per round.
  s += "<div class=\"flex\">";
  for (const AdaptRun& a : adapt_runs())
    s += "<div class=\"card\"><h3 style=\"color:" + a.color + "\">" + html_escape(a.label) + "</h3>" +
         round_table_html(runs.at(a.name)) + "</div>";
  s += "</div>";

  // Last round, per class: the share of each class's pool that got a label (CBST's point:
  // about the portion for every class; ST starves the hard ones) and the labels' accuracy.
  report::BarChart share{.title = "Share of the pixels predicted as each class that received a pseudo-label "
                                  "(last round)",
                         .y_label = "labelled / predicted (%)", .categories = abbrev, .width = 1200};
  report::BarChart acc{.title = "Pseudo-label accuracy per class against the target ground truth (last round)",
                       .y_label = "correct (%)", .categories = abbrev, .width = 1200, .y_max = 100};
  for (const AdaptRun& a : adapt_runs()) {
    const AdaptRunRecord& run = runs.at(a.name);
    if (run.rounds.empty()) continue;
    const RoundRecord& last = run.rounds.back();
    report::Series sh{.name = a.label, .color = a.color}, ac{.name = a.label, .color = a.color};
    for (size_t c = 0; c < names.size(); ++c) {
      const double pool = at(last.pool_sizes, c);
      sh.y.push_back(pool > 0 ? std::min(100.0, 100 * at(last.class_coverage, c) * double(target_pixels) / pool) : kNaN);
      ac.y.push_back(100 * at(last.class_accuracy, c));
    }
    share.series.push_back(sh);
    acc.series.push_back(ac);
  }
  s += "<p class=\"note\">CBST takes about the same portion of every class's most confident pixels; ST's single "
       "threshold favours the classes the source model is already sure of. A grey × means there was nothing to "
       "measure (no pixel predicted as, or labelled with, that class); a measured 0% is a thin bar marked 0.</p>";
  s += report::svg_bar_chart(share) + report::svg_bar_chart(acc);

  // Every round, per class: coverage (share of all target pixels) and accuracy.
  s += "<h3>Per class and round: pseudo-labelled share of all target pixels / accuracy</h3><div class=\"flex\">";
  for (const AdaptRun& a : adapt_runs())
    s += pseudo_label_class_table_html(runs.at(a.name), names, a.label, a.color);
  return s + "</div>";
}

// The logged training loss (mean over each logging window) of a run folder's metrics.jsonl.
std::vector<double> read_losses(const std::string& dir) {
  std::vector<double> losses;
  for (const LossPoint& p : read_loss_points(dir)) losses.push_back(p.loss);
  return losses;
}

std::string loss_section(const DemoReportInput& in) {
  struct Group {
    std::string title;
    std::vector<std::pair<std::string, std::string>> runs;  // (folder, colour)
  };
  const Group groups[] = {
      {"Supervised training: source-only and oracle", {{"source-only", kSourceColor}, {"oracle", kOracleColor}}},
      {"Self-training (all rounds, in order)", {{"st", adapt_runs()[0].color}, {"cbst", adapt_runs()[1].color},
                                                {"cbst-sp", adapt_runs()[2].color}}}};
  std::string s = "<p class=\"note\">Training loss (softmax cross-entropy, mean over each logging window of " +
                  std::to_string(in.config.log_every) + " steps) of every run. A self-training run's loss is over "
                  "the source subset and the pseudo-labelled target pixels; it jumps where a round adds labels.</p>"
                  "<div class=\"flex\">";
  for (const Group& g : groups) {
    report::LineChart c{.title = g.title, .x_label = "logged step (×" + std::to_string(in.config.log_every) + ")",
                        .y_label = "loss", .width = 620, .height = 300, .y_from_zero = true};
    size_t longest = 0;
    for (const auto& [name, color] : g.runs) {
      Series ser{.name = name, .y = read_losses((fs::path(in.out) / name).string()), .color = color};
      longest = std::max(longest, ser.y.size());
      c.series.push_back(ser);
    }
    for (size_t i = 0; i < longest; ++i) c.x.push_back(double(i + 1));
    // Ticks at a readable spacing instead of one per logged step.
    const size_t every = std::max<size_t>(1, longest / 8);
    for (size_t i = 0; i < longest; ++i) c.x_tick_labels.push_back((i + 1) % every == 0 ? std::to_string(i + 1) : "");
    s += report::svg_line_chart(c);
  }
  return s + "</div>";
}

std::string threshold_section(const std::map<std::string, AdaptRunRecord>& runs, const std::vector<std::string>& names) {
  std::string s =
      "<p class=\"note\">Thresholds of each round (DESIGN §7.3: the ⌊n·p⌋-th largest confidence of the pool). ST "
      "has one global threshold; CBST one per class; CBST-SP thresholds the prior-weighted score q·p, whose scale is "
      "that of the prior (log axis). A class whose pool is empty (no pixel predicted as it) gets the placeholder "
      "threshold 1.0: drawn as a hollow grey marker, never as a point of a round's line.</p><div class=\"flex\">";
  for (const AdaptRun& a : adapt_runs())
    s += threshold_chart_svg(runs.at(a.name), names, a.label + " class thresholds", a.name == "cbst-sp");
  return s + "</div>";
}

std::string panels_section(const DemoReportInput& in) {
  if (in.panels.empty()) return "<p class=\"note\">No panels (--panels 0).</p>";
  const auto& table = data::class_table(data::ClassSpace::cityscapes19);
  std::string s = "<div class=\"swatches\">";
  for (const data::ClassInfo& c : table)
    s += "<span><span class=\"swatch\" style=\"background:rgb(" + std::to_string(c.color[0]) + "," +
         std::to_string(c.color[1]) + "," + std::to_string(c.color[2]) + ")\"></span>" + html_escape(c.name) + "</span>";
  s += "<span><span class=\"swatch\" style=\"background:#000\"></span>no pseudo-label (ignored)</span></div>";
  const int width = std::min(2 * in.panels[0].image.width, 300);
  s += "<table class=\"panels\"><thead><tr><th>Target image</th><th>Ground truth</th><th>Source only</th>"
       "<th>CBST-SP</th><th>CBST-SP pseudo-label (" + html_escape(in.pseudo_round) + ")</th></tr></thead><tbody>";
  for (const DemoPanel& p : in.panels) {
    s += "<tr>";
    for (const data::Image* im : {&p.image, &p.ground_truth, &p.source_only, &p.cbst_sp, &p.pseudo_label})
      s += "<td><img width=\"" + std::to_string(width) + "\" alt=\"" + html_escape(p.stem) + "\" src=\"" +
           report::png_data_uri(*im, in.out) + "\"></td>";
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

}  // namespace

std::string rare_class_summary(const std::vector<DemoMethodResult>& methods) {
  const DemoMethodResult *st = find_method(methods, "st"), *cbst = find_method(methods, "cbst");
  if (!st || !cbst) return "";
  std::string better, worse;
  int rare = 0, wins = 0;
  for (size_t c = 0; c < st->eval.classes.size(); ++c) {
    const double share = ground_truth_share(st->eval, c);
    if (!(share > 0 && share < kRareClassShare)) continue;
    ++rare;
    // In tenths of a point as printed, so a difference that rounds to 0.0 is neither.
    const double d = std::round(1000 * (cbst->eval.classes[c].iou - st->eval.classes[c].iou)) / 10;
    const std::string item = st->eval.classes[c].name + " " + (d > 0 ? "+" : "") + fmt(d == 0 ? 0.0 : d);
    if (d > 0) {
      ++wins;
      better += (better.empty() ? "" : ", ") + item;
    } else {
      worse += (worse.empty() ? "" : ", ") + item;
    }
  }
  if (rare == 0) return "No class holds under 1% of the val pixels.";
  return "CBST beats ST on " + std::to_string(wins) + " of " + std::to_string(rare) +
         " rare classes (under 1% of the val pixels)" + (better.empty() ? "" : ": " + better) +
         (worse.empty() ? "" : "; not on: " + worse) + " (IoU points).";
}

std::string demo_table_text(const std::vector<DemoMethodResult>& methods) {
  const std::vector<std::string> names = class_names(methods);
  char cell[64];
  std::string s;
  std::snprintf(cell, sizeof cell, "%-12s", "method");
  s += cell;
  for (const std::string& n : names) {
    std::snprintf(cell, sizeof cell, "%6s", class_abbreviation(n).c_str());
    s += cell;
  }
  s += "   mIoU\n" + std::string(12 + 6 * names.size() + 7, '-') + "\n";
  for (const DemoMethodResult& m : methods) {
    std::snprintf(cell, sizeof cell, "%-12s", m.name.c_str());
    s += cell;
    for (const data::ClassScore& c : m.eval.classes) {
      std::snprintf(cell, sizeof cell, "%6.1f", 100 * c.iou);
      s += cell;
    }
    std::snprintf(cell, sizeof cell, "%7.1f\n", 100 * m.eval.miou);
    s += cell;
  }
  return s;
}

std::string demo_table_markdown(const std::vector<DemoMethodResult>& methods) {
  const std::vector<std::string> names = class_names(methods);
  std::string s = "| Method |";
  for (const std::string& n : names) s += " " + class_abbreviation(n) + " |";
  s += " mIoU |\n|---|";
  for (size_t c = 0; c <= names.size(); ++c) s += "---:|";
  s += "\n";
  for (const DemoMethodResult& m : methods) {
    s += "| " + m.label + " |";
    for (const data::ClassScore& c : m.eval.classes) s.append(" ").append(fmt(100 * c.iou)).append(" |");
    s += " **" + fmt(100 * m.eval.miou) + "** |\n";
  }
  return s;
}

double gap_share_percent(double source_miou, double cbst_sp_miou, double oracle_miou) {
  // + 0.0 turns the −0 that rounds a share just below 0 into 0.
  return std::round(100 * (cbst_sp_miou - source_miou) / (oracle_miou - source_miou)) + 0.0;
}

std::string demo_report_html(const DemoReportInput& in) {
  const DemoConfig& cfg = in.config;
  std::map<std::string, AdaptRunRecord> runs;
  for (const AdaptRun& a : adapt_runs()) runs[a.name] = read_adapt_run((fs::path(in.out) / a.name).string());
  const std::vector<std::string> names = class_names(in.methods);
  const int64_t target_pixels = int64_t(cfg.target_train) * cfg.height * cfg.width;

  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                  "<title>cbst demo: class-balanced self-training on the synthetic benchmark</title><style>" +
                  std::string(report_style()) + "</style></head><body><main>";
  h += "<h1>Class-balanced self-training on the synthetic benchmark</h1>";
  h += "<p class=\"sub\">cbst demo · seed " + std::to_string(cfg.seed) + " · " + std::to_string(cfg.height) + "×" +
       std::to_string(cfg.width) + " images · " + std::to_string(cfg.source_images) + " source (labelled), " +
       std::to_string(cfg.target_train) + " target (unlabelled for adaptation), " + std::to_string(cfg.target_val) +
       " target val · " + html_escape(cfg.model) + " · " + html_escape(cfg.device.str()) + (cfg.quick ? " · <b>--quick</b>" : "") +
       " · " + fmt(in.total_seconds, 0) + " s</p>";
  h += "<p class=\"note\">Source: game-like renders with flat colours (GTA5 layout). Target: the same kind of street "
       "scenes with another colour table, textures, noise, blur, illumination and more people and bicycles "
       "(Cityscapes layout). ST, CBST and CBST-SP start from the same source model and run the same schedule (" +
       count_of(cfg.rounds, "round") + " × " + count_of(cfg.epochs_per_round, "epoch") + ", " +
       std::to_string(cfg.self_training_crop()) + "-pixel crops, portion " + fmt(cfg.portion.start, 2) + " + " + fmt(cfg.portion.step, 2) + " per round, CRST regulariser " +
       html_escape(cfg.regularizer) +
       (cfg.regularizer == "none" ? std::string()
                                  : " with weight " + fmt(cfg.reg_weight >= 0 ? cfg.reg_weight
                                                                               : default_reg_weight(regularizer_from_name(cfg.regularizer)),
                                                          2)) +
       "); the oracle "
       "trains on the target's own labels. All five are evaluated on the same val images with the same inference "
       "(single scale, no flip).</p>";

  h += "<h2>Per-class IoU (%) on the target val split</h2>" + iou_table_html(in.methods);
  h += "<p class=\"note\">Underlined: best of the four rows without target labels. Same layout as Table 1 of Zou et "
       "al., ECCV 2018. " + ordering_note(in.methods) + "</p>";
  h += "<h2>Rare classes: CBST against ST</h2><p class=\"note\">The paper's claim is about the rare, hard-to-transfer "
       "classes. " + html_escape(rare_class_summary(in.methods)) + "</p>" + rare_class_table(in.methods);
  h += "<h2>mIoU per round</h2>" + miou_chart(in.methods, runs, cfg.rounds);
  h += "<h2>Training loss</h2>" + loss_section(in);
  h += "<h2>Pseudo-labels</h2>" + pseudo_label_section(runs, names, target_pixels);
  h += "<h2>Thresholds</h2>" + threshold_section(runs, names);
  h += "<h2>Samples (target training images)</h2>" + panels_section(in);

  h += "<h2>Steps</h2><div class=\"flex\"><table class=\"small\"><thead><tr><th class=\"method\">step</th>"
       "<th>seconds</th></tr></thead><tbody>";
  std::string commands;
  for (const DemoStep& s : in.steps) {
    h += "<tr><td class=\"method\">" + html_escape(s.name) + "</td><td>" + fmt(s.seconds, 1) + "</td></tr>";
    commands += html_escape(s.command) + "\n";
  }
  h += "<tr><td class=\"method\"><b>total</b></td><td><b>" + fmt(in.total_seconds, 1) + "</b></td></tr></tbody></table>";
  h += "<div style=\"flex: 1; min-width: 0\"><p class=\"note\" style=\"margin-top: 0\">The same steps with the "
       "ordinary subcommands (each run folder's config.toml holds its options):</p><pre>" + commands + "</pre></div></div>";
  h += "<footer>Generated by <code>cbst demo</code>. Run folders, checkpoints, pseudo-labels and per-round JSON: " +
       html_escape(in.out) + ". Self-contained: no scripts, no network.</footer>";
  return h + "</main></body></html>\n";
}

void write_demo_report(const DemoReportInput& input) {
  data::write_text_atomic((fs::path(input.out) / "report.html").string(), demo_report_html(input));
}

}  // namespace cbst
