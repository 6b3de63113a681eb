// Building blocks of the self-contained HTML reports (DESIGN §8 `report.html`): escaping,
// base64 data URIs for embedded PNGs, and inline SVG charts. Everything is text; a report
// needs no JavaScript and no network (no fonts, scripts or images from elsewhere).
//
// The charts are small and plain on purpose: axes with a few rounded ticks, one colour per
// series, a legend, values a reader can check against the tables beside them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace cbst::report {

// &, <, >, " and ' as entities, so text and attribute values cannot break the markup.
std::string html_escape(const std::string& text);

// RFC 4648 base64 with padding.
std::string base64(const std::vector<uint8_t>& bytes);

// An RGB or grey image as "data:image/png;base64,..." (encoded through a temporary file in
// `scratch_dir`, which must exist; the file is removed).
std::string png_data_uri(const data::Image& image, const std::string& scratch_dir);
std::string png_file_data_uri(const std::string& path);

// "Nice" axis ticks covering [lo, hi]: about `count` values at steps of 1, 2 or 5 × 10^k.
std::vector<double> nice_ticks(double lo, double hi, int count = 5);

// A line chart. x values are shared by all series; a NaN y leaves a gap. Reference lines
// are horizontal (dashed), e.g. a baseline and an upper bound.
struct Series {
  std::string name = {};
  std::vector<double> y = {};
  std::string color = {};  // CSS colour
  bool dashed = false;  // draw dashed
  // Line charts: points only (no line), drawn hollow; e.g. values that are placeholders
  // rather than measurements (an empty pool's threshold 1.0).
  bool markers_only = false;
};
struct ReferenceLine {
  std::string name = {};
  double y = 0;
  std::string color = {};
};
struct LineChart {
  std::string title = {};
  std::string x_label = {};
  std::string y_label = {};
  std::vector<double> x = {};
  std::vector<std::string> x_tick_labels = {};  // one per x; empty: the x values
  std::vector<Series> series = {};
  std::vector<ReferenceLine> references = {};
  int width = 640;
  int height = 320;
  bool y_from_zero = false;  // include 0 in the y range
  bool log_y = false;        // log10 axis (values must be positive)
};
std::string svg_line_chart(const LineChart& chart);

// Grouped vertical bars: one group per category, one bar per series in each group. A value
// of exactly 0 draws a thin bar and a "0" (a measured zero); NaN draws a grey "×" (nothing
// to measure), so the two never look alike.
struct BarChart {
  std::string title = {};
  std::string y_label = {};
  std::vector<std::string> categories = {};
  std::vector<Series> series = {};  // y: one value per category (NaN: no bar)
  int width = 900;
  int height = 260;
  double y_max = 0;  // 0: from the data
};
std::string svg_bar_chart(const BarChart& chart);

// A colour for value v in [0, 1] on a white → `hue` ramp, as "rgb(r,g,b)"; NaN gives a grey.
std::string heat_color(double v, int red = 46, int green = 125, int blue = 50);

// The series palette (colour-blind safe, Okabe–Ito) by index.
const std::string& palette(size_t index);

}  // namespace cbst::report
