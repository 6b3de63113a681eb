// The HTML report's building blocks: escaping, base64, ticks, SVG charts, and the demo's
// tables.
#include "selftrain/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "selftrain/demo_report.h"
#include "tests/data/data_test_util.h"

namespace cbst {
namespace {

using report::base64;
using report::html_escape;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(HtmlEscape, ReplacesEveryMarkupCharacter) {
  EXPECT_EQ(html_escape("a<b>&\"c'd"), "a&lt;b&gt;&amp;&quot;c&#39;d");
  EXPECT_EQ(html_escape("plain text 1.5%"), "plain text 1.5%");
  EXPECT_EQ(html_escape(""), "");
  // Already-escaped text is escaped again (the input is text, not markup).
  EXPECT_EQ(html_escape("&amp;"), "&amp;amp;");
}

TEST(Base64, MatchesRfc4648TestVectors) {
  auto b = [](const std::string& s) { return base64(std::vector<uint8_t>(s.begin(), s.end())); };
  EXPECT_EQ(b(""), "");
  EXPECT_EQ(b("f"), "Zg==");
  EXPECT_EQ(b("fo"), "Zm8=");
  EXPECT_EQ(b("foo"), "Zm9v");
  EXPECT_EQ(b("foob"), "Zm9vYg==");
  EXPECT_EQ(b("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64({0xff, 0xfe, 0x00}), "//4A");
}

TEST(PngDataUri, EmbedsAValidPng) {
  data::test_util::TempDir dir;
  data::Image im = data::Image::blank(3, 2, 3, 200);
  const std::string uri = report::png_data_uri(im, dir.path());
  ASSERT_EQ(uri.rfind("data:image/png;base64,", 0), 0u);
  // The PNG signature \x89PNG\r\n\x1a\n encodes to "iVBORw0KGgo".
  EXPECT_EQ(uri.substr(22, 11), "iVBORw0KGgo");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the scratch file must be removed";
}

TEST(NiceTicks, UseRoundStepsThatCoverTheRange) {
  const std::vector<double> t = report::nice_ticks(13.2, 47.9, 5);
  ASSERT_GE(t.size(), 2u);
  EXPECT_LE(t.front(), 13.2);
  EXPECT_GE(t.back(), 47.9);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 10.0);
  const std::vector<double> small = report::nice_ticks(0, 0.93, 5);
  EXPECT_NEAR(small[1] - small[0], 0.2, 1e-12);  // exact multiples up to rounding of 0.2
  EXPECT_GE(small.back(), 0.93);
  // A degenerate range still yields an axis.
  EXPECT_GE(report::nice_ticks(5, 5, 5).size(), 2u);
}

TEST(SvgLineChart, DrawsEverySeriesReferenceAndEscapedLabel) {
  report::LineChart c{.title = "mIoU <per> round", .x_label = "round", .y_label = "mIoU (%)",
                      .x = {0, 1, 2, 3}, .x_tick_labels = {"start", "1", "2", "3"}};
  c.series.push_back({.name = "ST", .y = {10, 12, 13, 13.5}, .color = "#E69F00"});
  c.series.push_back({.name = "CBST & co", .y = {10, 14, NAN, 16}, .color = "#0072B2"});
  c.references.push_back({"Oracle", 40, "#7B3294"});
  const std::string svg = report::svg_line_chart(c);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
  EXPECT_NE(svg.find("mIoU &lt;per&gt; round"), std::string::npos);
  EXPECT_EQ(svg.find("<per>"), std::string::npos);
  EXPECT_NE(svg.find("CBST &amp; co"), std::string::npos);
  // ST is one polyline; CBST's NaN splits it in two; 7 finite points get markers.
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_EQ(count(svg, "<circle"), 7u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // the reference line
  EXPECT_NE(svg.find(">start</text>"), std::string::npos);
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));
}

TEST(SvgLineChart, LogAxisSkipsNonPositiveValues) {
  report::LineChart c{.x = {0, 1, 2}, .log_y = true};
  c.series.push_back({.name = "t", .y = {1e-4, 0, 1e-2}, .color = "#000"});
  const std::string svg = report::svg_line_chart(c);
  EXPECT_EQ(count(svg, "<circle"), 2u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(SvgBarChart, OneBarPerFiniteValue) {
  report::BarChart c{.title = "coverage", .y_label = "%", .categories = {"road", "sky", "bike"}};
  c.series.push_back({.name = "ST", .y = {50, 20, NAN}, .color = "#E69F00"});
  c.series.push_back({.name = "CBST", .y = {30, 30, 25}, .color = "#0072B2"});
  const std::string svg = report::svg_bar_chart(c);
  EXPECT_EQ(count(svg, "<rect"), 5u + 2u);  // 5 bars and 2 legend swatches
  EXPECT_NE(svg.find("bike, CBST: 25.00"), std::string::npos);
}

// A measured 0% and "no pixel" (NaN) must never look alike: a thin bar marked 0, against a
// grey × with no bar.
TEST(SvgBarChart, ZeroIsAThinMarkedBarAndNanIsACross) {
  report::BarChart c{.title = "accuracy", .y_label = "%", .categories = {"pole", "light"}, .y_max = 100};
  c.series.push_back({.name = "CBST", .y = {0, NAN}, .color = "#0072B2"});
  const std::string svg = report::svg_bar_chart(c);
  EXPECT_EQ(count(svg, "<rect"), 1u + 1u);  // the zero's bar and the legend swatch
  EXPECT_NE(svg.find("pole, CBST: 0.00"), std::string::npos);
  EXPECT_NE(svg.find(">0</text>"), std::string::npos);
  EXPECT_NE(svg.find("×<title>light, CBST: no pixel</title>"), std::string::npos);
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));
}

TEST(SvgLineChart, MarkersOnlySeriesDrawHollowPointsAndNoLine) {
  report::LineChart c{.x = {0, 1, 2}};
  c.series.push_back({.name = "round 1", .y = {0.9, NAN, 0.8}, .color = "#000"});
  c.series.push_back({.name = "empty pool", .y = {NAN, 1.0, NAN}, .color = "#999", .markers_only = true});
  const std::string svg = report::svg_line_chart(c);
  EXPECT_EQ(count(svg, "<polyline"), 2u);  // round 1 split by its gap; none for the markers
  EXPECT_EQ(count(svg, "<circle"), 3u);
  EXPECT_EQ(count(svg, "fill=\"#fff\" stroke=\"#999\""), 1u);
}

TEST(HeatColor, RunsFromWhiteToTheHue) {
  EXPECT_EQ(report::heat_color(0, 0, 0, 0), "rgb(255,255,255)");
  EXPECT_EQ(report::heat_color(1, 10, 20, 30), "rgb(10,20,30)");
  EXPECT_EQ(report::heat_color(7, 10, 20, 30), "rgb(10,20,30)");  // clamped
  EXPECT_EQ(report::heat_color(NAN), "rgb(238,238,238)");
}

TEST(DemoTable, HasOneRowPerMethodAndMiouLast) {
  std::vector<DemoMethodResult> methods;
  for (const char* name : {"source-only", "oracle"}) {
    DemoMethodResult m{.name = name, .label = name};
    m.eval.classes = {{.name = "road", .iou = 0.9}, {.name = "motorcycle", .iou = 0.123}};
    m.eval.miou = 0.5111;
    methods.push_back(m);
  }
  const std::string text = demo_table_text(methods);
  EXPECT_NE(text.find("  road motor   mIoU"), std::string::npos) << text;
  EXPECT_NE(text.find("source-only   90.0  12.3   51.1"), std::string::npos) << text;
  const std::string md = demo_table_markdown(methods);
  EXPECT_NE(md.find("| Method | road | motor | mIoU |"), std::string::npos) << md;
  EXPECT_NE(md.find("| oracle | 90.0 | 12.3 | **51.1** |"), std::string::npos) << md;
  EXPECT_EQ(class_abbreviation("traffic light"), "light");
  EXPECT_EQ(class_abbreviation("road"), "road");
}

}  // namespace
}  // namespace cbst
