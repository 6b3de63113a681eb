// Image/label transforms: resize (bilinear for images, nearest for labels), random scale,
// random crop with label padding 255, horizontal flip, normalisation per weight convention.
//
// Sampling convention: pixel centres at (i + 0.5), i.e. align_corners = false, as in
// cv2.resize / PIL / torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
//
// The training path (`augment_sample`) fuses scale + crop + flip + normalise: only the
// pixels inside the crop are interpolated, written straight as normalised f32 CHW. It
// computes the same values as resize_bilinear -> crop -> flip -> normalize without the
// intermediate rounding to 8 bits.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "data/image.h"
#include "data/sample_rng.h"

namespace cbst::data {

// out[c] = (in[order[c]] * scale - mean[c]) / std[c], CHW, where order is RGB or BGR.
struct Normalization {
  bool bgr = false;
  float scale = 1.0f / 255.0f;
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};  // in output channel order, after scale
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};

  // Caffe VGG16: BGR, 0..255, minus the ImageNet BGR mean, no division.
  static Normalization caffe();
  // torchvision: RGB, 0..1, ImageNet mean/std.
  static Normalization torchvision();
  // "caffe" / "caffe_bgr", "torchvision" / "torch_rgb"; throws listing the names.
  static Normalization from_name(const std::string& name);
};

Image resize_bilinear(const Image& image, int width, int height);
Labels resize_nearest(const Labels& labels, int width, int height);
// The window [x0, x0 + width) x [y0, y0 + height); outside the source: `pad` (image: per
// channel value, labels: 255).
Image crop(const Image& image, int x0, int y0, int width, int height, std::array<uint8_t, 3> pad = {0, 0, 0});
Labels crop(const Labels& labels, int x0, int y0, int width, int height);
void flip_horizontal(Image& image);
void flip_horizontal(Labels& labels);
// 8-bit RGB HWC -> f32 CHW (out holds 3 * height * width floats).
void normalize(float* out, const Image& image, const Normalization& norm);

struct AugmentParams {
  int resize_long_side = 0;  // first resize so the long side is this (0: keep the file's size)
  double min_scale = 0.7;    // then a random scale factor in [min_scale, max_scale]
  double max_scale = 1.3;
  int crop_width = 500;      // 0: no crop (output is the scaled image)
  int crop_height = 500;
  bool flip = true;          // random horizontal flip with probability 1/2
};

// Photometric jitter with torchvision's ColorJitter semantics, for the source domain of an
// adaptation (synthetic colours are the first thing that does not transfer): brightness
// multiplies by b ∈ [1−B, 1+B], contrast blends with the image's mean grey by c ∈ [1−C, 1+C],
// saturation blends each pixel with its own grey by s ∈ [1−S, 1+S], hue rotates by
// h ∈ [−H, H] turns (H ≤ 0.5). Applied in that order, each on the 0–255 values with
// clamping, as torchvision's functional ops on uint8 images. All zero: off. With a probability
// P < 1 the jitter is applied to an image only with probability P, as torchvision's
// RandomApply([ColorJitter(...)], p=P) (SimCLR's and DACS's way): the other images keep the
// domain's own colours.
struct ColorJitter {
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
  double probability = 1;
  bool enabled() const { return probability > 0 && (brightness > 0 || contrast > 0 || saturation > 0 || hue > 0); }
  // "B,C,S,H" (e.g. "0.3,0.3,0.3,0.05"), "B,C,S,H,P", or one number for B = C = S (hue 0);
  // "0" is off.
  static ColorJitter parse(const std::string& text);
  std::string str() const;  // "B,C,S,H", or "B,C,S,H,P" when P < 1
};
// Draws the four factors from `rng` (always four draws), then, when P < 1, one more draw that
// decides whether the image is jittered, and applies them to `image` in place. At P = 1 the
// stream and the result are those of the plain jitter.
void color_jitter(Image& image, const ColorJitter& jitter, SampleRng& rng);

// Random Gaussian blur, the other half of DACS's and DAFormer's photometric augmentation: with
// probability P the image is blurred by a Gaussian of standard deviation σ ∈ [σ_lo, σ_hi]
// pixels (of the image as read, before scaling), with reflected borders as torchvision's
// GaussianBlur. A render's edges are sharper than any camera's, so a net trained on them alone
// reads a softened edge as another class. P = 0: off.
struct GaussianBlur {
  double probability = 0, sigma_lo = 0.15, sigma_hi = 1.15;
  bool enabled() const { return probability > 0; }
  // "P" (σ in DAFormer's 0.15–1.15) or "P,LO,HI"; "0" is off.
  static GaussianBlur parse(const std::string& text);
  std::string str() const;  // "P,LO,HI"
};
// Always two draws from `rng` (whether to blur, then σ); blurs `image` in place when drawn.
void gaussian_blur(Image& image, const GaussianBlur& blur, SampleRng& rng);

// One sample's random choices; a function of (params, image size, rng) only.
struct AugmentDraw {
  int scaled_width = 0;
  int scaled_height = 0;
  int x0 = 0, y0 = 0;  // crop origin in the scaled image
  int out_width = 0, out_height = 0;
  bool flip = false;
};
AugmentDraw draw_augment(const AugmentParams& params, int width, int height, SampleRng& rng);

// image_out: 3 * out_height * out_width floats (normalised, CHW); labels_out: out_height *
// out_width (255 where padded or when `labels` is null). Padded image pixels are 0 after
// normalisation, i.e. the mean colour.
void augment_sample(float* image_out, uint8_t* labels_out, const Image& image, const Labels* labels,
                    const AugmentDraw& draw, const Normalization& norm);

// The column (row) of the file's label grid that output column x (row y) of augment_sample
// reads by nearest neighbour, flip included; −1 where the output is padding. For per-pixel
// targets that must follow the labels (CRST's soft pseudo-labels).
int augment_label_column(const AugmentDraw& draw, int x, int label_width);
int augment_label_row(const AugmentDraw& draw, int y, int label_height);

}  // namespace cbst::data
