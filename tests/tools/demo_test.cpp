// `cbst demo --quick` end to end on the CPU: it completes, prints the five-row table, and
// writes the run folders, table.md, results.json and a well-formed, self-contained
// report.html holding the table.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "selftrain/demo.h"
#include "selftrain/demo_report.h"
#include "tests/tools/cli_runner.h"
#include "weights/json.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cbst;

// A small well-formedness check of HTML as the report writes it: every non-void element is
// closed in order, attribute values are quoted, and no raw '<' hides in text. Returns an
// empty string or the first problem.
std::string check_balanced_html(const std::string& html) {
  static const std::vector<std::string> kVoid = {"meta", "img", "br", "hr", "link", "input"};
  std::vector<std::string> open;
  size_t i = 0;
  auto where = [&](size_t at) { return " at byte " + std::to_string(at); };
  while ((i = html.find('<', i)) != std::string::npos) {
    if (html.compare(i, 9, "<!DOCTYPE") == 0) {
      i = html.find('>', i);
      continue;
    }
    const size_t end = html.find('>', i);
    if (end == std::string::npos) return "unterminated tag" + where(i);
    const std::string tag = html.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) return "'<' inside a tag" + where(i);
    if (std::count(tag.begin(), tag.end(), '"') % 2 != 0) return "unbalanced quotes in <" + tag + ">" + where(i);
    const bool closing = !tag.empty() && tag[0] == '/';
    const bool self_closing = !tag.empty() && tag.back() == '/';
    std::string name = tag.substr(closing ? 1 : 0);
    name = name.substr(0, name.find_first_of(" \t\n/"));
    if (name.empty()) return "empty tag name" + where(i);
    if (closing) {
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) + ">" + where(i);
      open.pop_back();
    } else if (!self_closing && std::find(kVoid.begin(), kVoid.end(), name) == kVoid.end()) {
      open.push_back(name);
      if (name == "style") {  // raw text up to </style>
        const size_t close = html.find("</style>", end);
        if (close == std::string::npos) return "unclosed <style>";
        i = close;
        continue;
      }
    }
    i = end + 1;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

TEST(DemoCheck, BalancedHtmlCheckerCatchesMistakes) {
  EXPECT_EQ(check_balanced_html("<html><body><p>a<img src=\"x\"></p></body></html>"), "");
  EXPECT_NE(check_balanced_html("<html><body><p>a</body></html>"), "");
  EXPECT_NE(check_balanced_html("<div class=\"a>b</div>"), "");
  EXPECT_NE(check_balanced_html("<table><tr><td>1</tr></table>"), "");
}

// Self-training's crop follows the image unless given: the shorter side, so 96 at the default
// 96x192 (the crop the recipe was fixed with) and 128 at 128x256.
TEST(DemoConfig, SelfTrainingCropIsTheShorterSideUnlessGiven) {
  DemoConfig c = demo_defaults(false);
  EXPECT_EQ(c.crop, 96);
  EXPECT_EQ(c.self_training_crop(), 96);
  c.height = 128, c.width = 256;
  EXPECT_EQ(c.self_training_crop(), 128);
  c.height = 300, c.width = 200;
  EXPECT_EQ(c.self_training_crop(), 200);
  c.adapt_crop = 64;
  EXPECT_EQ(c.self_training_crop(), 64);
  EXPECT_EQ(demo_defaults(true).self_training_crop(), demo_defaults(true).crop);
}

// The demo's "CBST-SP closes N% of the gap" (terminal and report): whole percent, and a
// share just below 0 reads 0, not "-0" (seed 10 printed "closes -0%").
TEST(DemoConfig, GapShareIsRoundedAndNeverMinusZero) {
  EXPECT_EQ(gap_share_percent(0.40, 0.45, 0.60), 25.0);
  EXPECT_EQ(gap_share_percent(0.429, 0.4285, 0.601), 0.0);
  EXPECT_FALSE(std::signbit(gap_share_percent(0.429, 0.4285, 0.601)));
  char printed[16];
  std::snprintf(printed, sizeof printed, "%.0f", gap_share_percent(0.429, 0.4285, 0.601));
  EXPECT_STREQ(printed, "0");
  EXPECT_EQ(gap_share_percent(0.40, 0.38, 0.60), -10.0);
}

TEST(DemoSlow, QuickRunWritesTheTableAndASelfContainedReport) {
  const fs::path dir = fs::temp_directory_path() / ("cbst_demo_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "demo";
  // With the two options that reach only the benchmark and the source's photometry.
  const auto bad = run_cbst("demo --quick --scale-range 2,1 --out " + out.string(), (dir / "bad.log").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("cbst: error: --scale-range '2,1' is not MIN,MAX"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(out));
  const auto r = run_cbst("demo --quick --device cpu --style-gap 0.5 --blur 0.5 --source-portion 0.3,0.1,0.5 "
                          "--scale-range 0.75,1.5 --round-schedule constant --adapt-crop 40 --prior-support 33 "
                          "--adapt-scales 0.9,1.2 --adapt-target-jitter on "
                          "--out " +
                              out.string(),
                          (dir / "demo.log").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // The printed table: the six methods with a value per class and the mIoU.
  const std::vector<std::string> methods = {"source-only", "adabn", "st", "cbst", "cbst-sp", "oracle"};
  const std::vector<std::string> runs = {"source-only", "st", "cbst", "cbst-sp", "oracle"};
  const size_t header = r.output.find("method        road  side build");
  ASSERT_NE(header, std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mIoU", header), std::string::npos);
  for (const std::string& m : methods) {
    const size_t row = r.output.find("\n" + m + " ", header);
    ASSERT_NE(row, std::string::npos) << m << "\n" << r.output;
    std::istringstream line(r.output.substr(row + 1, r.output.find('\n', row + 1) - row - 1));
    std::string name;
    line >> name;
    std::vector<double> values;
    for (double v; line >> v;) values.push_back(v);
    ASSERT_EQ(values.size(), 20u) << m << ": 19 classes and the mIoU";
    for (double v : values) EXPECT_TRUE(v >= 0 && v <= 100) << m << ": " << v;
  }

  // The run folders and files.
  for (const std::string& m : runs)
    EXPECT_TRUE(fs::exists(out / m / "checkpoints" / "final.safetensors")) << m;
  for (const char* f : {"data/synth.json", "prior.safetensors", "adabn.safetensors", "table.md", "results.json",
                        "report.html", "demo.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_TRUE(fs::exists(out / "cbst-sp" / "rounds" / "1" / "thresholds.json"));

  // results.json: valid JSON with the six methods in order, each with 19 class scores.
  const nlohmann::json results = weights::parse_json(read_text(out / "results.json"));
  ASSERT_TRUE(results.contains("methods") && results["methods"].is_array());
  const nlohmann::json& ms = results["methods"];
  ASSERT_EQ(ms.size(), 6u);
  for (size_t i = 0; i < methods.size(); ++i) {
    EXPECT_EQ(ms[i].value("method", ""), methods[i]);
    ASSERT_TRUE(ms[i].contains("eval") && ms[i]["eval"].contains("classes"));
    EXPECT_EQ(ms[i]["eval"]["classes"].size(), 19u);
  }

  // The style gap reached the benchmark, the blur every run trained on the source (not the
  // oracle), and the report's command lines say so.
  EXPECT_NE(read_text(out / "data" / "synth.json").find("\"style_gap\": 0.5"), std::string::npos);
  const std::string commands = read_text(out / "report.html");
  EXPECT_NE(commands.find("--style-gap 0.5"), std::string::npos);
  size_t blurred = 0;
  for (size_t p = commands.find("--blur 0.5,0.15,1.15"); p != std::string::npos;
       p = commands.find("--blur 0.5,0.15,1.15", p + 1))
    ++blurred;
  EXPECT_EQ(blurred, 4u) << "source-only, ST, CBST and CBST-SP";
  for (const char* flag : {"--source-portion 0.3,0.1,0.5", "--round-schedule constant", "--support 33 --sigma 5.5"})
    EXPECT_NE(commands.find(flag), std::string::npos) << flag;
  EXPECT_NE(read_text(out / "oracle" / "config.toml").find("scale-range = \"0.75,1.5\""), std::string::npos);
  for (const char* m : {"source-only", "st", "cbst", "cbst-sp"})
    EXPECT_NE(read_text(out / m / "config.toml").find("blur"), std::string::npos) << m;
  EXPECT_EQ(read_text(out / "oracle" / "config.toml").find("blur"), std::string::npos);
  // Self-training starts from the AdaBN model and takes its own crop; source-only and the
  // oracle keep --quick's 48.
  for (const char* m : {"st", "cbst", "cbst-sp"})
    EXPECT_NE(read_text(out / m / "config.toml").find("adabn.safetensors\"\n"), std::string::npos) << m;
  EXPECT_NE(commands.find("cbst adabn --checkpoint"), std::string::npos);
  // The defaults --adapt-adabn rounds and --adapt-flip on, with --adapt-scales 0.9,1.2 and
  // --adapt-target-jitter on (both off by default): every self-training run re-estimates its
  // statistics each round too, its pseudo-labels average the mirrored image and the two
  // scales, and it jitters its target crops, while its rounds' evaluations, like the table,
  // score the image alone: each run's last round is its row.
  for (const char* m : {"st", "cbst", "cbst-sp"}) {
    const std::string config = read_text(out / m / "config.toml");
    EXPECT_NE(config.find("\nadabn = true\n"), std::string::npos) << m;
    EXPECT_NE(config.find("\nflip = true\n"), std::string::npos) << m;
    EXPECT_NE(config.find("\nscales = \"0.9,1.2\"\n"), std::string::npos) << m;
    EXPECT_NE(config.find("\ntarget-jitter = true\n"), std::string::npos) << m;
    EXPECT_NE(read_text(out / m / "log.txt").find("round 2/2: AdaBN,"), std::string::npos) << m;
  }
  EXPECT_NE(commands.find("--previews 2 --adabn --flip --target-jitter --scales 0.9,1.2"), std::string::npos);
  for (size_t i = 2; i <= 4; ++i) {
    const nlohmann::json summary = weights::parse_json(read_text(out / methods[i] / "summary.json"));
    EXPECT_EQ(summary["final"].value("miou", -1.0), ms[i]["eval"].value("miou", -2.0)) << methods[i];
    EXPECT_TRUE(summary["rounds"][0].value("target_jitter", false)) << methods[i];
  }
  EXPECT_EQ(commands.find("averaged in"), std::string::npos);
  EXPECT_NE(r.output.find("AdaBN (the target's batch-norm statistics, no labels) scores"), std::string::npos);
  for (const char* m : {"st", "cbst", "cbst-sp"})
    EXPECT_NE(read_text(out / m / "config.toml").find("\ncrop = 40\n"), std::string::npos) << m;
  for (const char* m : {"source-only", "oracle"})
    EXPECT_NE(read_text(out / m / "config.toml").find("\ncrop = 48\n"), std::string::npos) << m;
  // What the model's recipe would otherwise fill in (tools/cli/recipe.h) is spelt out, so the
  // report's command lines rerun what ran: the oracle's jitter is off.
  EXPECT_NE(read_text(out / "oracle" / "config.toml").find("\ncolor-jitter = 0\n"), std::string::npos);
  EXPECT_NE(commands.find("--color-jitter 0 "), std::string::npos);

  // report.html: well-formed, the table with the five rows and the class names, the
  // charts and panels inline, nothing loaded from elsewhere.
  const std::string html = read_text(out / "report.html");
  EXPECT_EQ(check_balanced_html(html), "");
  const size_t table = html.find("<table class=\"iou\">");
  ASSERT_NE(table, std::string::npos);
  const std::string iou = html.substr(table, html.find("</table>", table) - table);
  for (const char* label : {"Source only", "AdaBN (target BN statistics)", "ST", "CBST", "CBST-SP", "Oracle (target labels)"})
    EXPECT_NE(iou.find("<td class=\"method\">" + std::string(label) + "</td>"), std::string::npos) << label;
  for (const char* cls : {"road", "sidewalk", "traffic light", "vegetation", "motorcycle", "bicycle"})
    EXPECT_NE(iou.find(">" + std::string(cls) + "</th>"), std::string::npos) << cls;
  EXPECT_EQ(std::count(iou.begin(), iou.end(), '\n'), 0);
  size_t rows = 0;
  for (size_t p = iou.find("<tr"); p != std::string::npos; p = iou.find("<tr", p + 1)) ++rows;
  EXPECT_EQ(rows, 7u) << "header and six methods";
  EXPECT_NE(html.find("<svg"), std::string::npos);
  // A loss curve per run: each run folder's metrics.jsonl holds logged losses.
  EXPECT_NE(html.find("<h2>Training loss</h2>"), std::string::npos);
  for (const std::string& m : runs)
    EXPECT_NE(read_text(out / m / "metrics.jsonl").find("\"loss\":"), std::string::npos) << m;
  EXPECT_NE(html.find("src=\"data:image/png;base64,"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);

  // A second run replaces the earlier demo; a folder that holds something else is refused.
  fs::create_directories(dir / "other");
  std::ofstream(dir / "other" / "keep.txt") << "mine\n";
  const auto refused = run_cbst("demo --quick --out " + (dir / "other").string(), (dir / "other.log").string());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("holds no earlier cbst demo"), std::string::npos) << refused.output;
  EXPECT_TRUE(fs::exists(dir / "other" / "keep.txt"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cbst
