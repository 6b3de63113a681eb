// report.html of every `cbst train` and `cbst adapt` run folder: one self-contained page
// (inline SVG, PNGs as data URIs, no JavaScript, nothing from the network) read back from
// the folder's files, so it can be written after each epoch or round and at the end:
//   - what ran (config.toml) and how far it got; best and final mIoU;
//   - mIoU per epoch or round (round 0: the starting model), per-class IoU of each
//     evaluation;
//   - the training loss of every logged step (per round for adapt);
//   - adapt: pseudo-label statistics per round (portion, coverage, accuracy against the
//     target ground truth when there is any), per class and round, thresholds, previews.
// The readers and tables of one adaptation run are shared with the demo's report
// (demo_report.h), which sets three runs side by side.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace cbst {

// Not measured (NaN is written as null in JSON).
inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

// One round of an adaptation run: rounds/<r>/summary.json and rounds/<r>/thresholds.json.
struct RoundRecord {
  int64_t round = 0;  // from 1
  double miou = kNotMeasured, portion = kNotMeasured, lr = kNotMeasured, coverage = kNotMeasured,
         accuracy = kNotMeasured, train_loss = kNotMeasured, source_images = kNotMeasured;
  std::vector<double> class_coverage = {}, class_accuracy = {}, thresholds = {}, pool_sizes = {};
};
struct AdaptRunRecord {
  double initial_miou = kNotMeasured;  // round 0, eval/initial.json
  std::vector<RoundRecord> rounds = {};  // rounds 1, 2, … as far as the run got
};
AdaptRunRecord read_adapt_run(const std::string& dir);

// The step records of a run folder's metrics.jsonl (mean loss over each logging window).
struct LossPoint {
  int64_t step = 0;
  double loss = 0;
  int64_t round = 0;  // 0: supervised training
};
std::vector<LossPoint> read_loss_points(const std::string& dir);

// Paper-style short class names ("sidewalk" → "side", "motorcycle" → "motor").
std::string class_abbreviation(const std::string& name);

// The pages' style sheet.
const char* report_style();

// Per round: portion, lr, source images, pseudo-labelled share and accuracy, loss, mIoU.
std::string round_table_html(const AdaptRunRecord& run);
// Per class and round: pseudo-labelled share of all target pixels / accuracy; the header
// cell names the run in its colour.
std::string pseudo_label_class_table_html(const AdaptRunRecord& run, const std::vector<std::string>& class_names,
                                          const std::string& label, const std::string& color);
// Each round's class thresholds; an empty pool's placeholder 1.0 drawn as a hollow marker.
std::string threshold_chart_svg(const AdaptRunRecord& run, const std::vector<std::string>& class_names,
                                const std::string& title, bool log_y);

// The page for the run folder `dir`, and written atomically to dir/report.html. A report
// that cannot be written is a warning on stderr, never the end of a run.
std::string run_report_html(const std::string& dir);
void write_run_report(const std::string& dir);

}  // namespace cbst
