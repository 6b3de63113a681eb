// The synthetic two-domain benchmark (DESIGN §6): procedurally drawn street scenes with the 19
// Cityscapes classes, in a *source* style (flat colours, sharp edges: a game render) and a
// *target* style (another colour table with near-collisions between classes, textures,
// illumination gradient and colour cast, sensor noise, blur), with a class-frequency shift
// between the two (the target has more people and bicycles, fewer cars) and a layout shift
// (the target's camera sits lower with a wider view over narrower streets, so objects are
// smaller and the horizon lower). Both domains share one spatial layout model (sky above, a road in perspective to a vanishing point, sidewalks,
// facades, vegetation, poles carrying lights and signs, vehicles and people standing on the
// ground and scaled by depth), so the shapes carry the signal across the appearance gap:
// a source-trained model transfers imperfectly and self-training on the target can help.
//
// Sample `index` of a domain is a pure function of (seed, domain, index, size): the same
// bytes whichever other samples are generated and in whatever order or thread.
//
// `write_synth_benchmark` writes the published layouts, so the ordinary readers open them:
//   OUT/gta5/images/NNNNN.png, OUT/gta5/labels/NNNNN.png   (palette PNG, indices = labelIds)
//   OUT/cityscapes/leftImg8bit/{train,val}/CITY/CITY_000000_NNNNNN_leftImg8bit.png
//   OUT/cityscapes/gtFine/{train,val}/CITY/CITY_000000_NNNNNN_gtFine_labelIds.png (grey)
//   OUT/synth.json   (the parameters; written last, so its presence means "complete")
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace cbst::data {

enum class SynthDomain { source, target };
const char* synth_domain_name(SynthDomain domain);  // "source", "target"

// Each target image's look, drawn uniformly from [low, high]. The benchmark's is one look for
// every image, 0.65 of the way from the game's to the full camera look (README, "Why one look,
// at 0.65": with a range, the frames nearest the game's look took the confident pixels).
struct SynthStyleGap {
  double low = 0.65, high = 0.65;
  bool operator==(const SynthStyleGap&) const = default;
};
// "G" or "LO,HI" (0 <= LO <= HI <= 1); throws cbst::Error naming `flag` otherwise.
SynthStyleGap parse_style_gap(const std::string& text, const std::string& flag);
std::string style_gap_text(const SynthStyleGap& gap);  // as parse_style_gap reads it

struct SynthParams {
  int height = 128;
  int width = 256;
  uint64_t seed = 1;
  // How far each target image's appearance moves from the source's, 0..1 (colour table,
  // texture, illumination, cast, noise, blur all scale with it), drawn per image uniformly in
  // [low, high]. 0 leaves only the layout and class-frequency shift; 1 is the full camera
  // look. A knob for calibrating how hard adaptation is.
  SynthStyleGap style_gap = {};
};

struct SynthSample {
  Image image;    // RGB, height x width
  Labels labels;  // Cityscapes trainIds 0..18 (every pixel labelled)
  double style_gap = 0;  // the look this image was drawn with (always 0 for the source)
};

// Throws cbst::Error for sizes below 16 or above 8192 pixels a side.
SynthSample synth_sample(SynthDomain domain, int64_t index, const SynthParams& params = {});

// The target's validation images are target samples kSynthValIndexBase + j, so that they
// never repeat a training image whatever the number of training images.
constexpr int64_t kSynthValIndexBase = int64_t(1) << 30;

// trainIds -> Cityscapes labelIds for writing (255 -> 0, "unlabeled").
Labels train_ids_to_label_ids(const Labels& train_ids);
// 256 entries: the Cityscapes colour of each of the 19 classes' labelIds, black elsewhere.
std::vector<std::array<uint8_t, 3>> label_id_palette();

struct SynthBenchmarkOptions {
  std::string out;
  SynthParams params = {};
  int source = 300;        // GTA5-layout images (source domain)
  int target_train = 300;  // Cityscapes train images (target domain)
  int target_val = 100;    // Cityscapes val images (target domain)
  std::string city = "synthtown";
  int threads = 0;  // 0: max(8, 2 x cores), since every file's fsync waits on the disk
};

struct SynthBenchmarkReport {
  std::string gta5_root;        // OUT/gta5
  std::string cityscapes_root;  // OUT/cityscapes
  int64_t files_written = 0;
  double seconds = 0;
};

// Throws cbst::Error (one line) for bad sizes or counts and for an unwritable OUT.
SynthBenchmarkReport write_synth_benchmark(const SynthBenchmarkOptions& options);

// File names of the layouts: "00001" for source sample 0 (GTA5 counts from 1), and
// "synthtown_000000_000042" for target sample 42 of a split.
std::string synth_gta5_stem(int64_t index);
std::string synth_cityscapes_stem(const std::string& city, int64_t index);

}  // namespace cbst::data
