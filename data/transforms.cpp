// Transforms on host images and labels.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/check.h"

namespace cbst::data {

Normalization Normalization::caffe() {
  // The mean of the ILSVRC training images in BGR order, as shipped with VGG16's Caffe model.
  return Normalization{.bgr = true, .scale = 1.0f, .mean = {104.008f, 116.669f, 122.675f}, .std = {1, 1, 1}};
}

Normalization Normalization::torchvision() { return Normalization{}; }

Normalization Normalization::from_name(const std::string& name) {
  if (name == "caffe" || name == "caffe_bgr") return caffe();
  if (name == "torchvision" || name == "torch_rgb") return torchvision();
  CBST_THROW("unknown input normalisation '", name,
             "'; use caffe (BGR 0-255 minus mean) or torchvision (RGB 0-1, mean/std)");
}

namespace {

// Source taps for one output coordinate along an axis (half-pixel centres, clamped).
struct Tap {
  int lo = 0, hi = 0;
  float w = 0;  // weight of hi
};

Tap bilinear_tap(int o, int out_size, int in_size) {
  double s = (o + 0.5) * double(in_size) / double(out_size) - 0.5;
  s = std::clamp(s, 0.0, double(in_size - 1));
  Tap t;
  t.lo = int(s);
  t.hi = std::min(t.lo + 1, in_size - 1);
  t.w = float(s - t.lo);
  return t;
}

int nearest_index(int o, int out_size, int in_size) {
  const int i = int((o + 0.5) * double(in_size) / double(out_size));
  return std::min(i, in_size - 1);
}

}  // namespace

Image resize_bilinear(const Image& image, int width, int height) {
  CBST_CHECK(width > 0 && height > 0 && !image.empty(), "resize_bilinear: bad size ", width, "x", height);
  const int c = image.channels;
  Image out = Image::blank(width, height, c);
  std::vector<Tap> xs(width);
  for (int x = 0; x < width; ++x) xs[x] = bilinear_tap(x, width, image.width);
  for (int y = 0; y < height; ++y) {
    const Tap ty = bilinear_tap(y, height, image.height);
    const uint8_t* r0 = image.row(ty.lo);
    const uint8_t* r1 = image.row(ty.hi);
    uint8_t* dst = out.row(y);
    for (int x = 0; x < width; ++x) {
      const Tap& tx = xs[x];
      for (int k = 0; k < c; ++k) {
        const float top = r0[tx.lo * c + k] + tx.w * (r0[tx.hi * c + k] - r0[tx.lo * c + k]);
        const float bot = r1[tx.lo * c + k] + tx.w * (r1[tx.hi * c + k] - r1[tx.lo * c + k]);
        const float v = top + ty.w * (bot - top);
        dst[x * c + k] = uint8_t(std::clamp(v + 0.5f, 0.0f, 255.0f));
      }
    }
  }
  return out;
}

Labels resize_nearest(const Labels& labels, int width, int height) {
  CBST_CHECK(width > 0 && height > 0 && !labels.ids.empty(), "resize_nearest: bad size ", width, "x", height);
  Labels out = Labels::blank(width, height);
  std::vector<int> xs(width);
  for (int x = 0; x < width; ++x) xs[x] = nearest_index(x, width, labels.width);
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = labels.ids.data() + size_t(nearest_index(y, height, labels.height)) * labels.width;
    uint8_t* dst = out.ids.data() + size_t(y) * width;
    for (int x = 0; x < width; ++x) dst[x] = src[xs[x]];
  }
  return out;
}

Image crop(const Image& image, int x0, int y0, int width, int height, std::array<uint8_t, 3> pad) {
  const int c = image.channels;
  Image out = Image::blank(width, height, c);
  for (int y = 0; y < height; ++y) {
    uint8_t* dst = out.row(y);
    const int sy = y0 + y;
    for (int x = 0; x < width; ++x) {
      const int sx = x0 + x;
      const bool inside = sx >= 0 && sy >= 0 && sx < image.width && sy < image.height;
      for (int k = 0; k < c; ++k)
        dst[x * c + k] = inside ? image.row(sy)[sx * c + k] : pad[std::min(k, 2)];
    }
  }
  return out;
}

Labels crop(const Labels& labels, int x0, int y0, int width, int height) {
  Labels out = Labels::blank(width, height);
  for (int y = 0; y < height; ++y) {
    const int sy = y0 + y;
    if (sy < 0 || sy >= labels.height) continue;
    for (int x = 0; x < width; ++x) {
      const int sx = x0 + x;
      if (sx >= 0 && sx < labels.width)
        out.ids[size_t(y) * width + x] = labels.ids[size_t(sy) * labels.width + sx];
    }
  }
  return out;
}

void flip_horizontal(Image& image) {
  const int c = image.channels;
  for (int y = 0; y < image.height; ++y) {
    uint8_t* r = image.row(y);
    for (int a = 0, b = image.width - 1; a < b; ++a, --b)
      for (int k = 0; k < c; ++k) std::swap(r[a * c + k], r[b * c + k]);
  }
}

void flip_horizontal(Labels& labels) {
  for (int y = 0; y < labels.height; ++y) {
    uint8_t* r = labels.ids.data() + size_t(y) * labels.width;
    std::reverse(r, r + labels.width);
  }
}

void normalize(float* out, const Image& image, const Normalization& norm) {
  CBST_CHECK(image.channels == 3, "normalize: expected an RGB image, got ", image.channels, " channels");
  const size_t plane = size_t(image.width) * image.height;
  for (int c = 0; c < 3; ++c) {
    const int src = norm.bgr ? 2 - c : c;
    const float a = norm.scale / norm.std[c], b = -norm.mean[c] / norm.std[c];
    float* dst = out + c * plane;
    for (size_t i = 0; i < plane; ++i) dst[i] = image.pixels[i * 3 + src] * a + b;
  }
}

namespace {

// The comma-separated numbers of `text`, or nothing when it is anything else ("0.1,0.1x").
std::vector<double> comma_numbers(const std::string& text) {
  std::vector<double> out;
  const char* p = text.c_str();
  while (true) {
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) return {};
    out.push_back(v);
    if (*end == 0) return out;
    if (*end != ',') return {};
    p = end + 1;
  }
}

}  // namespace

ColorJitter ColorJitter::parse(const std::string& text) {
  const std::vector<double> v = comma_numbers(text);
  ColorJitter j;
  if (v.size() == 4 || v.size() == 5) {
    j = {.brightness = v[0], .contrast = v[1], .saturation = v[2], .hue = v[3], .probability = v.size() == 5 ? v[4] : 1};
  } else if (v.size() == 1) {
    j = {.brightness = v[0], .contrast = v[0], .saturation = v[0], .hue = 0};
  } else {
    CBST_THROW("colour jitter '", text,
               "' is not B,C,S,H, B,C,S,H,P or one number (e.g. 0.3,0.3,0.3,0.05 or 0.4,0.4,0.4,0.1,0.5)");
  }
  if (!(j.brightness >= 0 && j.brightness <= 1 && j.contrast >= 0 && j.contrast <= 1 && j.saturation >= 0 &&
                 j.saturation <= 1 && j.hue >= 0 && j.hue <= 0.5))
    CBST_THROW("colour jitter '", text, "': brightness, contrast and saturation must lie in [0, 1] and hue in [0, 0.5]");
  if (!(j.probability >= 0 && j.probability <= 1))
    CBST_THROW("colour jitter '", text, "': the probability (the fifth value) must lie in [0, 1]");
  return j;
}

std::string ColorJitter::str() const {
  char buf[128];
  if (probability < 1)
    std::snprintf(buf, sizeof buf, "%g,%g,%g,%g,%g", brightness, contrast, saturation, hue, probability);
  else
    std::snprintf(buf, sizeof buf, "%g,%g,%g,%g", brightness, contrast, saturation, hue);
  return buf;
}

namespace {

uint8_t clamp_byte(float v) { return uint8_t(std::clamp(v, 0.0f, 255.0f) + 0.5f); }

// Hue rotation through HSV, as torchvision's adjust_hue.
void rotate_hue(uint8_t* px, float turns) {
  const float r = px[0] / 255.0f, g = px[1] / 255.0f, b = px[2] / 255.0f;
  const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), delta = mx - mn;
  if (delta <= 0) return;  // grey: no hue
  float h = mx == r ? (g - b) / delta : mx == g ? 2.0f + (b - r) / delta : 4.0f + (r - g) / delta;
  h = h / 6.0f + turns;
  h -= std::floor(h);
  const float s = delta / mx, v = mx;
  const float h6 = h * 6.0f;
  const int sector = std::min(5, int(h6));
  const float f = h6 - float(sector);
  const float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  float out[3];
  switch (sector) {
    case 0: out[0] = v, out[1] = t, out[2] = p; break;
    case 1: out[0] = q, out[1] = v, out[2] = p; break;
    case 2: out[0] = p, out[1] = v, out[2] = t; break;
    case 3: out[0] = p, out[1] = q, out[2] = v; break;
    case 4: out[0] = t, out[1] = p, out[2] = v; break;
    default: out[0] = v, out[1] = p, out[2] = q; break;
  }
  for (int c = 0; c < 3; ++c) px[c] = clamp_byte(out[c] * 255.0f);
}

float grey_of(const uint8_t* px) { return 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]; }

}  // namespace

void color_jitter(Image& image, const ColorJitter& j, SampleRng& rng) {
  CBST_CHECK(image.channels == 3, "color_jitter: expected an RGB image, got ", image.channels, " channels");
  const float b = float(rng.uniform(1 - j.brightness, 1 + j.brightness));
  const float c = float(rng.uniform(1 - j.contrast, 1 + j.contrast));
  const float s = float(rng.uniform(1 - j.saturation, 1 + j.saturation));
  const float h = float(rng.uniform(-j.hue, j.hue));
  if (j.probability < 1 && !(rng.uniform() < j.probability)) return;
  uint8_t* px = image.pixels.data();
  const size_t n = size_t(image.width) * image.height;
  if (j.brightness > 0)
    for (size_t i = 0; i < 3 * n; ++i) px[i] = clamp_byte(px[i] * b);
  if (j.contrast > 0) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += grey_of(px + 3 * i);
    const float mean = float(sum / double(std::max<size_t>(n, 1)));
    for (size_t i = 0; i < 3 * n; ++i) px[i] = clamp_byte(c * px[i] + (1 - c) * mean);
  }
  if (j.saturation > 0)
    for (size_t i = 0; i < n; ++i) {
      const float g = grey_of(px + 3 * i);
      for (int k = 0; k < 3; ++k) px[3 * i + k] = clamp_byte(s * px[3 * i + k] + (1 - s) * g);
    }
  if (j.hue > 0)
    for (size_t i = 0; i < n; ++i) rotate_hue(px + 3 * i, h);
}

GaussianBlur GaussianBlur::parse(const std::string& text) {
  const std::vector<double> v = comma_numbers(text);
  GaussianBlur b;
  if (v.size() == 3) {
    b = {.probability = v[0], .sigma_lo = v[1], .sigma_hi = v[2]};
  } else if (v.size() == 1) {
    b.probability = v[0];
  } else {
    CBST_THROW("blur '", text, "' is not P or P,SIGMA_MIN,SIGMA_MAX (e.g. 0.5 or 0.5,0.15,1.15)");
  }
  if (!(b.probability >= 0 && b.probability <= 1))
    CBST_THROW("blur '", text, "': the probability must lie in [0, 1]");
  if (!(b.sigma_lo > 0 && b.sigma_hi >= b.sigma_lo && b.sigma_hi <= 16))
    CBST_THROW("blur '", text, "': sigma must satisfy 0 < min <= max <= 16 pixels");
  return b;
}

std::string GaussianBlur::str() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%g,%g,%g", probability, sigma_lo, sigma_hi);
  return buf;
}

void gaussian_blur(Image& image, const GaussianBlur& blur, SampleRng& rng) {
  if (image.channels != 3) CBST_THROW("gaussian_blur: expected an RGB image, got ", image.channels, " channels");
  const double u = rng.uniform();
  const double sigma = rng.uniform(blur.sigma_lo, blur.sigma_hi);
  if (!(u < blur.probability)) return;
  const int w = image.width, h = image.height;
  if (w <= 0 || h <= 0) return;
  // Radius 3σ; a reflected border needs the radius below the side.
  const int r = std::min({int(std::ceil(3 * sigma)), w - 1, h - 1});
  if (r <= 0) return;
  std::vector<float> k(size_t(2 * r + 1));
  float sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] = std::exp(-0.5f * float(i * i) / float(sigma * sigma));
  for (float& v : k) v /= sum;
  auto reflect = [](int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; };
  std::vector<float> tmp(size_t(w) * h * 3);
  const uint8_t* px = image.pixels.data();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        for (int i = -r; i <= r; ++i) acc += k[size_t(i + r)] * px[(size_t(y) * w + reflect(x + i, w)) * 3 + c];
        tmp[(size_t(y) * w + x) * 3 + c] = acc;
      }
  uint8_t* out = image.pixels.data();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        for (int i = -r; i <= r; ++i) acc += k[size_t(i + r)] * tmp[(size_t(reflect(y + i, h)) * w + x) * 3 + c];
        out[(size_t(y) * w + x) * 3 + c] = clamp_byte(acc);
      }
}

AugmentDraw draw_augment(const AugmentParams& p, int width, int height, SampleRng& rng) {
  CBST_CHECK(width > 0 && height > 0, "draw_augment: empty image");
  CBST_CHECK(p.min_scale > 0 && p.max_scale >= p.min_scale, "augment: scale range [", p.min_scale, ", ",
             p.max_scale, "] is invalid; use 0 < min <= max (e.g. 0.7..1.3)");
  double base = 1.0;
  if (p.resize_long_side > 0) base = double(p.resize_long_side) / std::max(width, height);
  // Every draw happens whether or not it is used, so the stream does not depend on options.
  const double s = rng.uniform(p.min_scale, p.max_scale);
  const double ux = rng.uniform(), uy = rng.uniform(), uf = rng.uniform();
  AugmentDraw d;
  d.scaled_width = std::max(1, int(std::lround(width * base * s)));
  d.scaled_height = std::max(1, int(std::lround(height * base * s)));
  if (p.crop_width > 0 && p.crop_height > 0) {
    // A crop bigger than twice the largest scaled image on both sides is mostly padding: a
    // step costs the crop's pixels and learns from a few percent of them.
    const double largest_w = width * base * p.max_scale, largest_h = height * base * p.max_scale;
    if (!(p.crop_width <= 2 * largest_w || p.crop_height <= 2 * largest_h))
      CBST_THROW("the crop ", p.crop_height, "x",
               p.crop_width, " is more than twice the size of a ", height, "x", width,
               " image even at the largest scale (", p.max_scale, "); use a crop of at most about ",
               int(std::lround(largest_h)), "x", int(std::lround(largest_w)), " (--crop HxW)");
    d.out_width = p.crop_width;
    d.out_height = p.crop_height;
    // A scaled image smaller than the crop sits at the top left and is padded bottom/right.
    d.x0 = d.scaled_width > p.crop_width ? int(ux * (d.scaled_width - p.crop_width + 1)) : 0;
    d.y0 = d.scaled_height > p.crop_height ? int(uy * (d.scaled_height - p.crop_height + 1)) : 0;
  } else {
    d.out_width = d.scaled_width;
    d.out_height = d.scaled_height;
  }
  d.flip = p.flip && uf < 0.5;
  return d;
}

void augment_sample(float* image_out, uint8_t* labels_out, const Image& image, const Labels* labels,
                    const AugmentDraw& d, const Normalization& norm) {
  CBST_CHECK(image.channels == 3, "augment_sample: expected an RGB image");
  if (labels)
    CBST_CHECK(labels->width == image.width && labels->height == image.height,
               "augment_sample: image ", image.width, "x", image.height, " and labels ", labels->width,
               "x", labels->height, " differ in size");
  const int ow = d.out_width, oh = d.out_height;
  const size_t plane = size_t(ow) * oh;
  // Column taps of the output, flip folded in; -1 marks padding.
  std::vector<Tap> xs(ow);
  std::vector<int> xn(ow);
  std::vector<char> xin(ow);
  for (int x = 0; x < ow; ++x) {
    const int X = d.x0 + (d.flip ? ow - 1 - x : x);
    xin[x] = X < d.scaled_width;
    if (xin[x]) {
      xs[x] = bilinear_tap(X, d.scaled_width, image.width);
      xn[x] = nearest_index(X, d.scaled_width, image.width);
    }
  }
  float a[3], b[3];
  int src[3];
  for (int c = 0; c < 3; ++c) {
    a[c] = norm.scale / norm.std[c];
    b[c] = -norm.mean[c] / norm.std[c];
    src[c] = norm.bgr ? 2 - c : c;
  }
  for (int y = 0; y < oh; ++y) {
    const int Y = d.y0 + y;
    float* out0 = image_out + size_t(y) * ow;
    uint8_t* lrow = labels_out + size_t(y) * ow;
    if (Y >= d.scaled_height) {
      for (int c = 0; c < 3; ++c) std::fill(out0 + c * plane, out0 + c * plane + ow, 0.0f);
      std::fill(lrow, lrow + ow, kIgnoreLabel);
      continue;
    }
    const Tap ty = bilinear_tap(Y, d.scaled_height, image.height);
    const uint8_t* r0 = image.row(ty.lo);
    const uint8_t* r1 = image.row(ty.hi);
    const uint8_t* lsrc =
        labels ? labels->ids.data() + size_t(nearest_index(Y, d.scaled_height, image.height)) * labels->width
               : nullptr;
    for (int x = 0; x < ow; ++x) {
      if (!xin[x]) {
        for (int c = 0; c < 3; ++c) out0[c * plane + x] = 0.0f;
        lrow[x] = kIgnoreLabel;
        continue;
      }
      const Tap& tx = xs[x];
      for (int c = 0; c < 3; ++c) {
        const int k = src[c];
        const float top = r0[tx.lo * 3 + k] + tx.w * (r0[tx.hi * 3 + k] - r0[tx.lo * 3 + k]);
        const float bot = r1[tx.lo * 3 + k] + tx.w * (r1[tx.hi * 3 + k] - r1[tx.lo * 3 + k]);
        out0[c * plane + x] = (top + ty.w * (bot - top)) * a[c] + b[c];
      }
      lrow[x] = lsrc ? lsrc[xn[x]] : kIgnoreLabel;
    }
  }
}

int augment_label_column(const AugmentDraw& d, int x, int label_width) {
  const int X = d.x0 + (d.flip ? d.out_width - 1 - x : x);
  return X < d.scaled_width ? nearest_index(X, d.scaled_width, label_width) : -1;
}

int augment_label_row(const AugmentDraw& d, int y, int label_height) {
  const int Y = d.y0 + y;
  return Y < d.scaled_height ? nearest_index(Y, d.scaled_height, label_height) : -1;
}

}  // namespace cbst::data
