#include "selftrain/report.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "engine/check.h"

namespace cbst::report {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Tick labels with as many decimals as the step needs (0.05 → 2, 5 → 0).
std::string tick_label(double v, double step) {
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0.0"
  return fmt(v, decimals);
}

std::string log_tick_label(double exponent) {
  const double v = std::pow(10.0, exponent);
  if (exponent >= 0 && exponent < 6) return fmt(v, 0);
  if (exponent < 0 && exponent >= -3) return fmt(v, int(-exponent));
  return "1e" + fmt(exponent, 0);
}

std::string text(double x, double y, const std::string& s, const std::string& extra = "") {
  return "<text x=\"" + fmt(x) + "\" y=\"" + fmt(y) + "\"" + (extra.empty() ? "" : " " + extra) + ">" +
         html_escape(s) + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& style) {
  return "<line x1=\"" + fmt(x1) + "\" y1=\"" + fmt(y1) + "\" x2=\"" + fmt(x2) + "\" y2=\"" + fmt(y2) + "\" " +
         style + "/>";
}

std::string svg_open(int width, int height, const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " +
         std::to_string(height) + "\" role=\"img\" aria-label=\"" + html_escape(title) +
         "\" font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\" font-size=\"12\">"
         "<title>" + html_escape(title) + "</title>";
}

// The y axis of a chart: its value range, ticks and the pixel mapping.
struct YAxis {
  double lo = 0, hi = 1;
  std::vector<double> ticks = {};
  bool log = false;
  double top = 0, bottom = 0;
  double to_px(double v) const {
    const double t = log ? std::log10(v) : v;
    return bottom - (t - lo) / (hi - lo) * (bottom - top);
  }
};

YAxis make_y_axis(std::vector<double> values, bool from_zero, bool log, double top, double bottom) {
  YAxis a{.log = log, .top = top, .bottom = bottom};
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v) && (!log || v > 0)) finite.push_back(log ? std::log10(v) : v);
  if (finite.empty()) finite = {0.0, 1.0};
  double lo = *std::min_element(finite.begin(), finite.end());
  double hi = *std::max_element(finite.begin(), finite.end());
  if (from_zero && !log) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  if (log) {
    a.lo = std::floor(lo), a.hi = std::max(std::ceil(hi), a.lo + 1);
    for (double e = a.lo; e <= a.hi + 1e-9; e += 1) a.ticks.push_back(e);
    return a;
  }
  if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  a.ticks = nice_ticks(lo, hi, 5);
  a.lo = std::min(lo, a.ticks.front());
  a.hi = std::max(hi, a.ticks.back());
  return a;
}

std::string y_axis_svg(const YAxis& a, double left, double right, const std::string& label) {
  std::string s;
  const double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1.0;
  for (double t : a.ticks) {
    const double y = a.bottom - (t - a.lo) / (a.hi - a.lo) * (a.bottom - a.top);
    s += line(left, y, right, y, "stroke=\"#e3e3e3\"");
    s += text(left - 6, y + 4, a.log ? log_tick_label(t) : tick_label(t, step), "text-anchor=\"end\" fill=\"#555\"");
  }
  s += line(left, a.top, left, a.bottom, "stroke=\"#888\"");
  const double mid = (a.top + a.bottom) / 2;
  s += text(14, mid, label, "text-anchor=\"middle\" fill=\"#333\" transform=\"rotate(-90 14 " + fmt(mid) + ")\"");
  return s;
}

std::string legend_entry(double x, double y, const std::string& name, const std::string& color, bool dashed,
                         bool bar) {
  std::string s = bar ? "<rect x=\"" + fmt(x) + "\" y=\"" + fmt(y - 9) + "\" width=\"14\" height=\"10\" fill=\"" +
                            html_escape(color) + "\"/>"
                      : line(x, y - 4, x + 18, y - 4, "stroke=\"" + html_escape(color) + "\" stroke-width=\"2.5\"" +
                                                         (dashed ? " stroke-dasharray=\"6 4\"" : ""));
  return s + text(x + 24, y, name, "fill=\"#222\"");
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(bytes[i]) << 16 | uint32_t(bytes[i + 1]) << 8 | bytes[i + 2];
    out += kAlphabet[v >> 18 & 63], out += kAlphabet[v >> 12 & 63], out += kAlphabet[v >> 6 & 63], out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(bytes[i]) << 16;
    out += kAlphabet[v >> 18 & 63], out += kAlphabet[v >> 12 & 63], out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint32_t(bytes[i]) << 16 | uint32_t(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63], out += kAlphabet[v >> 12 & 63], out += kAlphabet[v >> 6 & 63], out += '=';
  }
  return out;
}

std::string png_file_data_uri(const std::string& path) {
  return "data:image/png;base64," + base64(data::read_file_bytes(path));
}

std::string png_data_uri(const data::Image& image, const std::string& scratch_dir) {
  static std::atomic<int> counter{0};
  const std::string path = (std::filesystem::path(scratch_dir) /
                            (".report_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".png"))
                               .string();
  data::write_png(path, image);
  std::string uri = png_file_data_uri(path);
  std::filesystem::remove(path);
  return uri;
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  CBST_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi >= lo && count >= 2, "nice_ticks: bad range [", lo, ", ",
             hi, "] or count ", count);
  if (hi - lo < 1e-12) hi = lo + 1;
  // Of the steps 1, 2, 5 × 10^k near (hi − lo) / (count − 1), the one whose tick count is
  // closest to `count` (the larger step on a tie).
  const double magnitude = std::pow(10.0, std::floor(std::log10((hi - lo) / double(count - 1))));
  auto ticks_with = [&](double step) { return std::ceil(hi / step - 1e-9) - std::floor(lo / step + 1e-9) + 1; };
  double step = magnitude;
  for (double m : {0.5, 1.0, 2.0, 5.0, 10.0, 20.0})
    if (std::fabs(ticks_with(m * magnitude) - count) <= std::fabs(ticks_with(step) - count)) step = m * magnitude;
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; t < hi + step * (1 - 1e-9); t += step) ticks.push_back(std::round(t / step) * step);
  if (ticks.size() < 2) ticks.push_back(ticks.back() + step);
  return ticks;
}

const std::string& palette(size_t index) {
  static const std::vector<std::string> kColors = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                                   "#D55E00", "#56B4E9", "#F0E442", "#000000"};
  return kColors[index % kColors.size()];
}

std::string heat_color(double v, int red, int green, int blue) {
  if (!std::isfinite(v)) return "rgb(238,238,238)";
  v = std::clamp(v, 0.0, 1.0);
  auto mix = [v](int c) { return std::to_string(int(std::lround(255 + (c - 255) * v))); };
  return "rgb(" + mix(red) + "," + mix(green) + "," + mix(blue) + ")";
}

std::string svg_line_chart(const LineChart& c) {
  const double left = 60, right = c.width - 170.0, top = c.title.empty() ? 14.0 : 34.0, bottom = c.height - 46.0;
  std::vector<double> all;
  for (const Series& s : c.series) all.insert(all.end(), s.y.begin(), s.y.end());
  for (const ReferenceLine& r : c.references) all.push_back(r.y);
  const YAxis ya = make_y_axis(all, c.y_from_zero, c.log_y, top, bottom);
  double x_lo = c.x.empty() ? 0 : c.x.front(), x_hi = c.x.empty() ? 1 : c.x.back();
  if (x_hi - x_lo < 1e-12) x_lo -= 0.5, x_hi += 0.5;
  const double pad = (right - left) * 0.04;
  auto x_px = [&](double x) { return left + pad + (x - x_lo) / (x_hi - x_lo) * (right - left - 2 * pad); };

  std::string s = svg_open(c.width, c.height, c.title);
  if (!c.title.empty()) s += text(left, 20, c.title, "font-size=\"14\" font-weight=\"600\" fill=\"#222\"");
  s += y_axis_svg(ya, left, right, c.y_label);
  s += line(left, bottom, right, bottom, "stroke=\"#888\"");
  for (size_t i = 0; i < c.x.size(); ++i) {
    if (i < c.x_tick_labels.size() && c.x_tick_labels[i].empty()) continue;  // an unlabelled x: no tick
    const double x = x_px(c.x[i]);
    s += line(x, bottom, x, bottom + 4, "stroke=\"#888\"");
    s += text(x, bottom + 17, i < c.x_tick_labels.size() ? c.x_tick_labels[i] : fmt(c.x[i], 0),
              "text-anchor=\"middle\" fill=\"#555\"");
  }
  s += text((left + right) / 2, c.height - 8, c.x_label, "text-anchor=\"middle\" fill=\"#333\"");

  double legend_y = top + 10;
  for (const ReferenceLine& r : c.references) {
    if (!std::isfinite(r.y)) continue;
    const double y = ya.to_px(r.y);
    s += line(left, y, right, y, "stroke=\"" + html_escape(r.color) + "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"");
    s += text(right - 4, y - 5, r.name + " " + fmt(r.y, 1), "text-anchor=\"end\" fill=\"" + html_escape(r.color) + "\"");
    s += legend_entry(right + 16, legend_y, r.name, r.color, true, false);
    legend_y += 20;
  }
  for (const Series& ser : c.series) {
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        s += "<polyline fill=\"none\" stroke=\"" + html_escape(ser.color) + "\" stroke-width=\"2.5\"" +
             (ser.dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"" + points + "\"/>";
      points.clear();
    };
    for (size_t i = 0; i < c.x.size() && i < ser.y.size(); ++i) {
      if (!std::isfinite(ser.y[i]) || (c.log_y && ser.y[i] <= 0)) {
        flush();
        continue;
      }
      if (ser.markers_only) continue;
      if (!points.empty()) points += ' ';
      points.append(fmt(x_px(c.x[i]))).append(",").append(fmt(ya.to_px(ser.y[i])));
    }
    flush();
    const std::string fill = ser.markers_only ? "#fff\" stroke=\"" + html_escape(ser.color) + "\" stroke-width=\"2"
                                              : html_escape(ser.color);
    for (size_t i = 0; i < c.x.size() && i < ser.y.size(); ++i) {
      if (!std::isfinite(ser.y[i]) || (c.log_y && ser.y[i] <= 0)) continue;
      s += "<circle cx=\"" + fmt(x_px(c.x[i])) + "\" cy=\"" + fmt(ya.to_px(ser.y[i])) + "\" r=\"" +
           (ser.markers_only ? "5" : "3.5") + "\" fill=\"" + fill + "\"><title>" + html_escape(ser.name) + ": " +
           fmt(ser.y[i], 2) + "</title></circle>";
    }
    s += legend_entry(right + 16, legend_y, ser.name, ser.color, ser.dashed, false);
    legend_y += 20;
  }
  return s + "</svg>";
}

std::string svg_bar_chart(const BarChart& c) {
  const double left = 60, right = c.width - 20.0, top = c.title.empty() ? 24.0 : 40.0, bottom = c.height - 64.0;
  std::vector<double> all;
  for (const Series& s : c.series) all.insert(all.end(), s.y.begin(), s.y.end());
  if (c.y_max > 0) all.push_back(c.y_max);
  const YAxis ya = make_y_axis(all, true, false, top, bottom);
  std::string s = svg_open(c.width, c.height, c.title);
  if (!c.title.empty()) s += text(left, 20, c.title, "font-size=\"14\" font-weight=\"600\" fill=\"#222\"");
  s += y_axis_svg(ya, left, right, c.y_label);
  const size_t n = std::max<size_t>(1, c.categories.size()), k = std::max<size_t>(1, c.series.size());
  const double group = (right - left) / double(n), bar = group * 0.8 / double(k);
  for (size_t i = 0; i < c.categories.size(); ++i) {
    const double gx = left + group * double(i) + group * 0.1;
    for (size_t j = 0; j < c.series.size(); ++j) {
      const double v = i < c.series[j].y.size() ? c.series[j].y[i] : kNaN;
      const double bx = gx + bar * double(j), mid = bx + std::max(bar - 1, 1.0) / 2;
      if (!std::isfinite(v)) {
        s += "<text x=\"" + fmt(mid) + "\" y=\"" + fmt(bottom - 3) +
             "\" text-anchor=\"middle\" font-size=\"10\" fill=\"#aaa\">×<title>" +
             html_escape(c.categories[i] + ", " + c.series[j].name + ": no pixel") + "</title></text>";
        continue;
      }
      const double y = std::min(ya.to_px(std::max(v, 0.0)), bottom - 2);  // a zero still shows 2 px
      s += "<rect x=\"" + fmt(bx) + "\" y=\"" + fmt(y) + "\" width=\"" + fmt(std::max(bar - 1, 1.0)) +
           "\" height=\"" + fmt(std::max(bottom - y, 0.0)) + "\" fill=\"" + html_escape(c.series[j].color) + "\"><title>" +
           html_escape(c.categories[i] + ", " + c.series[j].name + ": " + fmt(v, 2)) + "</title></rect>";
      if (v == 0)
        s += text(mid, y - 3, "0", "text-anchor=\"middle\" font-size=\"10\" fill=\"" + html_escape(c.series[j].color) + "\"");
    }
    const double cx = left + group * (double(i) + 0.5);
    s += text(cx, bottom + 12, c.categories[i],
              "text-anchor=\"end\" fill=\"#444\" transform=\"rotate(-40 " + fmt(cx) + " " + fmt(bottom + 12) + ")\"");
  }
  s += line(left, bottom, right, bottom, "stroke=\"#888\"");
  double lx = left + 8;
  for (const Series& ser : c.series) {
    s += legend_entry(lx, top - 8, ser.name, ser.color, false, true);
    lx += 40 + 7.0 * double(ser.name.size());
  }
  return s + "</svg>";
}

}  // namespace cbst::report
