// The style stage of the synthetic benchmark: labels and materials to colours.
//
// Source ("game render"): saturated flat colours per class and material, geometric shading
// only, sharp edges. Target ("camera"): a muted colour table in which some classes nearly
// collide (sidewalk ~ road, terrain ~ vegetation, wall ~ building, truck ~ bus), procedural
// texture per class, an illumination gradient with vignetting, a colour cast, gamma, blur
// and sensor noise. `style_gap` blends every target ingredient from the source's (0) to the
// full target (1), by an amount drawn per image.
#include <cmath>

#include "data/synthetic_draw.h"

namespace cbst::data::synth {

namespace {

using Rgb = std::array<float, 3>;

struct ClassColours {
  std::array<Rgb, 4> body;  // instance tint picks one
  Rgb dark, accent, trim;
};

// Rows in trainId order.
const ClassColours kSource[kNumClasses] = {
    {{{{88, 86, 96}, {92, 90, 98}, {84, 84, 92}, {90, 88, 94}}}, {50, 50, 55}, {235, 235, 230}, {150, 150, 160}},
    {{{{186, 160, 172}, {190, 165, 176}, {180, 156, 168}, {184, 162, 170}}}, {120, 100, 110}, {215, 210, 205}, {215, 210, 205}},
    {{{{196, 160, 118}, {168, 96, 72}, {206, 196, 176}, {150, 150, 165}}}, {55, 75, 105}, {220, 220, 220}, {120, 100, 90}},
    {{{{214, 196, 140}, {200, 184, 130}, {220, 205, 150}, {205, 190, 138}}}, {120, 110, 80}, {230, 220, 180}, {170, 160, 120}},
    {{{{150, 112, 76}, {140, 105, 70}, {160, 120, 85}, {145, 110, 75}}}, {90, 70, 50}, {180, 150, 110}, {110, 85, 60}},
    {{{{140, 140, 150}, {140, 140, 150}, {140, 140, 150}, {140, 140, 150}}}, {70, 70, 75}, {200, 200, 200}, {100, 100, 110}},
    {{{{45, 45, 45}, {45, 45, 45}, {45, 45, 45}, {45, 45, 45}}}, {20, 20, 20}, {200, 200, 200}, {70, 70, 70}},
    {{{{245, 245, 245}, {245, 245, 245}, {245, 245, 245}, {245, 245, 245}}}, {30, 30, 30}, {245, 245, 245}, {210, 30, 30}},
    {{{{60, 135, 45}, {50, 120, 40}, {70, 145, 50}, {55, 128, 42}}}, {30, 70, 25}, {90, 160, 60}, {105, 75, 45}},
    {{{{160, 200, 95}, {170, 205, 100}, {150, 195, 90}, {165, 198, 98}}}, {110, 140, 60}, {190, 215, 120}, {140, 170, 80}},
    {{{{110, 170, 235}, {110, 170, 235}, {110, 170, 235}, {110, 170, 235}}}, {80, 130, 200}, {240, 240, 250}, {150, 190, 240}},
    {{{{205, 50, 50}, {50, 90, 205}, {235, 200, 60}, {60, 165, 80}}}, {40, 45, 75}, {235, 185, 145}, {60, 40, 30}},
    {{{{205, 50, 50}, {50, 90, 205}, {235, 200, 60}, {60, 165, 80}}}, {40, 45, 75}, {235, 185, 145}, {60, 40, 30}},
    {{{{205, 30, 30}, {30, 60, 185}, {235, 235, 235}, {40, 40, 40}}}, {45, 60, 85}, {240, 240, 225}, {60, 60, 60}},
    {{{{235, 235, 235}, {210, 125, 40}, {60, 105, 60}, {120, 120, 130}}}, {40, 50, 65}, {240, 240, 225}, {90, 90, 90}},
    {{{{235, 205, 40}, {205, 45, 45}, {40, 125, 205}, {235, 235, 235}}}, {40, 55, 75}, {250, 230, 120}, {245, 245, 245}},
    {{{{205, 40, 55}, {235, 235, 235}, {40, 165, 165}, {230, 230, 200}}}, {40, 50, 70}, {250, 250, 230}, {150, 150, 150}},
    {{{{35, 35, 35}, {205, 40, 40}, {40, 40, 205}, {220, 140, 30}}}, {20, 20, 20}, {240, 240, 240}, {190, 190, 200}},
    {{{{40, 110, 205}, {205, 40, 40}, {30, 30, 30}, {240, 240, 240}}}, {25, 25, 25}, {240, 240, 240}, {180, 180, 180}},
};

const ClassColours kTarget[kNumClasses] = {
    {{{{98, 98, 102}, {102, 101, 104}, {95, 95, 99}, {100, 99, 101}}}, {60, 60, 62}, {205, 205, 200}, {120, 118, 115}},
    {{{{112, 110, 113}, {116, 113, 114}, {108, 107, 110}, {114, 112, 112}}}, {80, 78, 80}, {150, 148, 145}, {150, 148, 145}},
    {{{{150, 140, 128}, {135, 118, 105}, {165, 160, 150}, {120, 118, 120}}}, {45, 50, 55}, {190, 190, 185}, {110, 105, 100}},
    {{{{152, 142, 128}, {140, 130, 118}, {160, 150, 138}, {146, 136, 124}}}, {90, 85, 80}, {180, 175, 165}, {130, 125, 118}},
    {{{{118, 115, 108}, {110, 108, 100}, {125, 120, 112}, {115, 112, 105}}}, {70, 70, 68}, {150, 150, 145}, {90, 90, 88}},
    {{{{110, 112, 115}, {110, 112, 115}, {110, 112, 115}, {110, 112, 115}}}, {60, 60, 62}, {170, 170, 170}, {80, 80, 82}},
    {{{{55, 60, 55}, {55, 60, 55}, {55, 60, 55}, {55, 60, 55}}}, {30, 30, 30}, {180, 180, 180}, {70, 72, 70}},
    {{{{230, 230, 225}, {230, 230, 225}, {230, 230, 225}, {230, 230, 225}}}, {40, 40, 40}, {230, 230, 225}, {190, 50, 50}},
    {{{{72, 96, 48}, {66, 90, 44}, {80, 104, 52}, {70, 94, 46}}}, {40, 55, 30}, {100, 120, 70}, {80, 70, 55}},
    {{{{88, 108, 58}, {92, 112, 60}, {84, 104, 56}, {90, 110, 58}}}, {60, 75, 40}, {120, 130, 85}, {95, 105, 65}},
    {{{{195, 208, 222}, {195, 208, 222}, {195, 208, 222}, {195, 208, 222}}}, {160, 175, 195}, {235, 238, 240}, {200, 210, 220}},
    {{{{70, 70, 80}, {120, 45, 45}, {55, 75, 115}, {165, 155, 135}}}, {35, 35, 40}, {200, 160, 130}, {50, 40, 35}},
    {{{{70, 70, 80}, {120, 45, 45}, {55, 75, 115}, {165, 155, 135}}}, {35, 35, 40}, {200, 160, 130}, {50, 40, 35}},
    {{{{125, 125, 130}, {35, 35, 40}, {205, 205, 205}, {70, 80, 110}}}, {35, 40, 45}, {215, 215, 205}, {45, 45, 48}},
    {{{{175, 175, 170}, {150, 140, 120}, {95, 105, 115}, {180, 180, 180}}}, {35, 40, 45}, {215, 215, 205}, {70, 70, 72}},
    {{{{178, 175, 162}, {150, 142, 118}, {100, 110, 120}, {182, 182, 178}}}, {35, 40, 45}, {215, 210, 160}, {75, 75, 78}},
    {{{{210, 210, 200}, {180, 65, 55}, {70, 120, 130}, {200, 200, 190}}}, {35, 40, 45}, {230, 230, 215}, {110, 110, 110}},
    {{{{40, 40, 45}, {130, 40, 40}, {50, 55, 80}, {150, 150, 155}}}, {25, 25, 25}, {210, 210, 210}, {140, 140, 145}},
    {{{{45, 45, 50}, {60, 70, 100}, {110, 40, 40}, {150, 150, 150}}}, {30, 30, 30}, {200, 200, 200}, {130, 130, 130}},
};

// Lamps: traffic lights by tint (red, amber, green); vehicles' tail lights are red.
Rgb lamp_colour(uint8_t cls, uint8_t tint, bool target) {
  if (cls == kLight && tint >= 86) {
    if (tint < 172) return target ? Rgb{230, 170, 60} : Rgb{255, 190, 0};
    return target ? Rgb{90, 220, 150} : Rgb{40, 230, 90};
  }
  return target ? Rgb{215, 60, 50} : Rgb{255, 40, 30};
}

Rgb base_colour(const ClassColours& t, uint8_t cls, uint8_t mat, uint8_t tint, bool target) {
  switch (mat) {
    case kDark: return t.dark;
    case kLamp: return lamp_colour(cls, tint, target);
    case kAccent:
      if (cls == kSign && tint % 3 == 2) return target ? Rgb{40, 80, 160} : Rgb{30, 80, 205};
      return t.accent;
    case kTrim: return t.trim;
    default: return t.body[tint % 4];
  }
}

// Texture strength and scale (pixels at 128 rows) per class in the target.
struct Texture {
  float amplitude, cell;
};
const Texture kTexture[kNumClasses] = {
    {0.10f, 5}, {0.09f, 3}, {0.09f, 6}, {0.10f, 4}, {0.08f, 2}, {0.05f, 4}, {0.05f, 4}, {0.04f, 4},
    {0.28f, 1.5f}, {0.20f, 2.5f}, {0.06f, 30}, {0.08f, 3}, {0.08f, 3}, {0.06f, 6}, {0.06f, 6},
    {0.06f, 6}, {0.06f, 6}, {0.06f, 3}, {0.06f, 3}};

float uniform_from(uint64_t h) { return float(h >> 40) * (1.0f / 16777216.0f); }

void blur(std::vector<float>& img, int w, int h, float sigma) {
  const int r = std::max(1, int(std::ceil(2.5f * sigma)));
  std::vector<float> k(size_t(2 * r + 1));
  float sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] = std::exp(-0.5f * float(i * i) / (sigma * sigma));
  for (float& v : k) v /= sum;
  std::vector<float> tmp(img.size());
  // Separable Gaussian, clamped at the borders.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        float acc = 0;
        for (int i = -r; i <= r; ++i) acc += k[size_t(i + r)] * img[(size_t(y) * w + std::clamp(x + i, 0, w - 1)) * 3 + ch];
        tmp[(size_t(y) * w + x) * 3 + ch] = acc;
      }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        float acc = 0;
        for (int i = -r; i <= r; ++i) acc += k[size_t(i + r)] * tmp[(size_t(std::clamp(y + i, 0, h - 1)) * w + x) * 3 + ch];
        img[(size_t(y) * w + x) * 3 + ch] = acc;
      }
}

}  // namespace

Image render_style(const Canvas& c, SynthDomain domain, SampleRng& rng, SynthStyleGap style_gap, double& gap_drawn) {
  const int w = c.width, h = c.height;
  const float res = float(h) / 128.0f;  // texture and blur scale with the image

  // Per-image draws, made for both domains so that the streams stay aligned.
  const uint64_t key = rng.below(uint64_t(1) << 40);
  const float angle = float(rng.uniform(0, 2 * M_PI));
  const float gradient = float(rng.uniform(0.2, 0.45));
  Rgb cast;
  for (float& v : cast) v = float(rng.uniform(-0.12, 0.12));
  const float warm = float(rng.uniform(-1, 1));  // a shared warm/cool tilt on top
  const float gamma = float(rng.uniform(0.85, 1.15));
  const float exposure = float(rng.uniform(0.85, 1.1));
  // Drawn last, so that a fixed gap leaves every earlier draw (and byte) as it was.
  const double gap = rng.uniform(std::clamp(style_gap.low, 0.0, 1.0), std::clamp(style_gap.high, 0.0, 1.0));
  const float g = domain == SynthDomain::target ? float(gap) : 0.0f;
  gap_drawn = g;

  std::vector<float> img(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      const uint8_t cls = c.cls[i], mat = c.mat[i], tint = c.tint[i];
      const Rgb a = base_colour(kSource[cls], cls, mat, tint, false);
      Rgb col = a;
      float shade = c.light[i];
      if (g > 0) {
        const Rgb b = base_colour(kTarget[cls], cls, mat, tint, true);
        for (int ch = 0; ch < 3; ++ch) col[ch] = a[ch] + g * (b[ch] - a[ch]);
        const Texture& t = kTexture[cls];
        const float cell = t.cell * res;
        const float tex = 0.65f * value_noise(key + cls, float(x), float(y), cell) +
                          0.35f * value_noise(key + 97 + cls, float(x), float(y), 0.4f * cell + 0.5f);
        float lit = 1 + g * t.amplitude * tex;
        if (cls == kSky) lit += g * 0.15f * (float(y) / float(h) - 0.25f);  // brighter toward the horizon
        const float u = float(x) / float(w) - 0.5f, v = float(y) / float(h) - 0.5f;
        if (mat != kLamp) {  // lamps emit: no illumination gradient
          lit *= 1 + g * gradient * (u * std::cos(angle) + v * std::sin(angle));
          lit *= 1 - g * 0.35f * (u * u + v * v);  // vignetting
        }
        shade = 1 + (shade - 1) * (1 - 0.3f * g);  // softer shading under diffuse daylight
        shade *= lit * (1 + g * (exposure - 1));
      }
      for (int ch = 0; ch < 3; ++ch) img[i * 3 + ch] = col[ch] * shade;
    }

  if (g > 0) {
    const Rgb tilt{0.06f * warm, 0, -0.06f * warm};
    for (size_t i = 0; i < img.size(); ++i) img[i] *= 1 + g * (cast[i % 3] + tilt[i % 3]);
    if (g * res > 0.25f) blur(img, w, h, 0.7f * g * res);
    const float sigma = 6.0f * g;  // sensor noise, in 8-bit steps
    for (size_t i = 0; i < img.size(); ++i) {
      const uint64_t hsh = hash64(key * 0x9E3779B97F4A7C15ull + i);
      // Sum of three uniforms: near-Gaussian, cheap, deterministic per pixel.
      const float n = uniform_from(hsh) + uniform_from(hash64(hsh)) + uniform_from(hash64(hsh + 1)) - 1.5f;
      float v = std::clamp(img[i] / 255.0f, 0.0f, 1.0f);
      v = std::pow(v, 1 + g * (gamma - 1));
      img[i] = v * 255.0f + sigma * 2.0f * n;
    }
  }
  Image out = Image::blank(w, h, 3);
  for (size_t i = 0; i < img.size(); ++i) out.pixels[i] = uint8_t(std::lround(std::clamp(img[i], 0.0f, 255.0f)));
  return out;
}

}  // namespace cbst::data::synth
