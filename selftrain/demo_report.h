// The demo's outputs: the per-class IoU table (terminal and markdown, in the layout of the
// paper's Table 1: one row per method, the 19 classes, mIoU last) and OUT/report.html, a
// single self-contained page (inline SVG, PNGs as base64 data URIs, no JavaScript, nothing
// fetched from the network) with
//   - the table, each cell shaded by its IoU;
//   - mIoU after each self-training round for ST, CBST and CBST-SP, with source-only and the
//     oracle as reference lines;
//   - per-class pseudo-label coverage and accuracy (against the target ground truth, which
//     the method never sees) for every round;
//   - the class thresholds of every round;
//   - sample panels: image | ground truth | source-only | CBST-SP | CBST-SP pseudo-label;
//   - the equivalent `cbst` command lines of every step.
// Per-round numbers come from the adaptation runs' folders (read_adapt_run, run_report.h).
#pragma once

#include <string>
#include <vector>

#include "data/evaluation.h"
#include "data/image.h"
#include "selftrain/demo.h"
#include "selftrain/run_report.h"  // class_abbreviation

namespace cbst {

struct DemoMethodResult {
  std::string name = {};   // folder name: source-only, st, cbst, cbst-sp, oracle
  std::string label = {};  // row label: "Source only", "ST", "CBST", "CBST-SP", "Oracle (target labels)"
  data::EvalResult eval = {};
  double seconds = 0;  // wall time of the method's training
};

struct DemoPanel {
  std::string stem = {};
  // RGB, all of the image's size.
  data::Image image = {}, ground_truth = {}, source_only = {}, cbst_sp = {}, pseudo_label = {};
};

struct DemoStep {
  std::string name = {};
  std::string command = {};  // the equivalent `cbst ...` command line
  double seconds = 0;
};

struct DemoReportInput {
  std::string out = {};  // the demo folder
  DemoConfig config = {};
  std::vector<DemoMethodResult> methods = {};  // in kDemoMethods order
  std::vector<DemoPanel> panels = {};
  std::vector<DemoStep> steps = {};
  double total_seconds = 0;
  std::string pseudo_round = {};  // e.g. "round 3": which round the panels' pseudo-labels come from
};

// One row per method, classes in the protocol's order, IoU in percent with one decimal,
// mIoU last. Monospace (terminal) and GitHub markdown.
std::string demo_table_text(const std::vector<DemoMethodResult>& methods);
std::string demo_table_markdown(const std::vector<DemoMethodResult>& methods);

// The paper's claim per class: where CBST stands against ST on the rare classes (those
// holding under 1% of the val ground-truth pixels), one line of plain text such as
// "CBST beats ST on 6 of 9 rare classes: pole +4.1, ...; not on: bus -2.0, ...".
// Empty when ST or CBST is missing.
constexpr double kRareClassShare = 0.01;
std::string rare_class_summary(const std::vector<DemoMethodResult>& methods);

// The share of the source-only → oracle gap that CBST-SP closes, in whole percent (rounded;
// a share just below 0 is 0, never "-0"). Only meaningful when oracle > source.
double gap_share_percent(double source_miou, double cbst_sp_miou, double oracle_miou);

// The whole page as a string (tests parse it), and written atomically to OUT/report.html.
std::string demo_report_html(const DemoReportInput& input);
void write_demo_report(const DemoReportInput& input);

}  // namespace cbst
