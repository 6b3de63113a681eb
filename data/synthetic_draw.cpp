// Canvas primitives and value noise for the synthetic benchmark (data/synthetic_draw.h).
#include "data/synthetic_draw.h"

namespace cbst::data::synth {

namespace {

// Pixel index range whose centres lie in [a, b); widened to one pixel around the middle
// when the span is thinner than a pixel.
void pixel_span(float a, float b, int limit, int* lo, int* hi) {
  if (b - a < 1.0f) {
    const float m = 0.5f * (a + b);
    a = m - 0.5f;
    b = m + 0.5f;
  }
  *lo = std::max(0, int(std::ceil(a - 0.5f)));
  *hi = std::min(limit - 1, int(std::ceil(b - 0.5f)) - 1);
}

}  // namespace

void Canvas::fill_rect(float x0, float y0, float x1, float y1, const Paint& p) {
  int xa, xb, ya, yb;
  pixel_span(x0, x1, width, &xa, &xb);
  pixel_span(y0, y1, height, &ya, &yb);
  for (int y = ya; y <= yb; ++y)
    for (int x = xa; x <= xb; ++x) set(x, y, p);
}

void Canvas::fill_disc(float cx, float cy, float r, const Paint& p) { fill_ring(cx, cy, r, -1, p); }

void Canvas::fill_ring(float cx, float cy, float r_out, float r_in, const Paint& p) {
  r_out = std::max(r_out, 0.6f);  // a far wheel or head is still one pixel
  const int ya = std::max(0, int(std::floor(cy - r_out))), yb = std::min(height - 1, int(cy + r_out));
  const int xa = std::max(0, int(std::floor(cx - r_out))), xb = std::min(width - 1, int(cx + r_out));
  for (int y = ya; y <= yb; ++y)
    for (int x = xa; x <= xb; ++x) {
      const float dx = x + 0.5f - cx, dy = y + 0.5f - cy, d2 = dx * dx + dy * dy;
      if (d2 <= r_out * r_out && (r_in <= 0 || d2 >= r_in * r_in)) set(x, y, p);
    }
}

void Canvas::fill_ellipse(float cx, float cy, float rx, float ry, const Paint& p) {
  rx = std::max(rx, 0.6f);
  ry = std::max(ry, 0.6f);
  const int ya = std::max(0, int(std::floor(cy - ry))), yb = std::min(height - 1, int(cy + ry));
  const int xa = std::max(0, int(std::floor(cx - rx))), xb = std::min(width - 1, int(cx + rx));
  for (int y = ya; y <= yb; ++y)
    for (int x = xa; x <= xb; ++x) {
      const float dx = (x + 0.5f - cx) / rx, dy = (y + 0.5f - cy) / ry;
      if (dx * dx + dy * dy <= 1) set(x, y, p);
    }
}

void Canvas::fill_capsule(float ax, float ay, float bx, float by, float r, const Paint& p) {
  r = std::max(r, 0.55f);
  const int ya = std::max(0, int(std::floor(std::min(ay, by) - r))),
            yb = std::min(height - 1, int(std::max(ay, by) + r));
  const int xa = std::max(0, int(std::floor(std::min(ax, bx) - r))),
            xb = std::min(width - 1, int(std::max(ax, bx) + r));
  const float vx = bx - ax, vy = by - ay, len2 = std::max(vx * vx + vy * vy, 1e-6f);
  for (int y = ya; y <= yb; ++y)
    for (int x = xa; x <= xb; ++x) {
      const float px = x + 0.5f - ax, py = y + 0.5f - ay;
      const float t = std::clamp((px * vx + py * vy) / len2, 0.0f, 1.0f);
      const float dx = px - t * vx, dy = py - t * vy;
      if (dx * dx + dy * dy <= r * r) set(x, y, p);
    }
}

void Canvas::fill_convex(const std::vector<std::array<float, 2>>& pts, const Paint& p) {
  float y_min = 1e30f, y_max = -1e30f;
  for (const auto& q : pts) {
    y_min = std::min(y_min, q[1]);
    y_max = std::max(y_max, q[1]);
  }
  const int ya = std::max(0, int(std::floor(y_min))), yb = std::min(height - 1, int(y_max));
  const size_t n = pts.size();
  for (int y = ya; y <= yb; ++y) {
    const float yc = y + 0.5f;
    float lo = 1e30f, hi = -1e30f;
    for (size_t i = 0; i < n; ++i) {
      const auto& a = pts[i];
      const auto& b = pts[(i + 1) % n];
      if ((a[1] <= yc && b[1] > yc) || (b[1] <= yc && a[1] > yc)) {
        const float x = a[0] + (yc - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
    }
    if (lo > hi) continue;
    int xa, xb;
    pixel_span(lo, hi, width, &xa, &xb);
    for (int x = xa; x <= xb; ++x) set(x, y, p);
  }
}

void Canvas::shade_ellipse(float cx, float cy, float rx, float ry, float factor) {
  const int ya = std::max(0, int(std::floor(cy - ry))), yb = std::min(height - 1, int(cy + ry));
  const int xa = std::max(0, int(std::floor(cx - rx))), xb = std::min(width - 1, int(cx + rx));
  for (int y = ya; y <= yb; ++y)
    for (int x = xa; x <= xb; ++x) {
      const float dx = (x + 0.5f - cx) / rx, dy = (y + 0.5f - cy) / ry;
      if (dx * dx + dy * dy <= 1) light[size_t(y) * width + x] *= factor;
    }
}

// A 64-bit finaliser-style mix: every input bit affects every output bit, which is all
// a lattice of noise values needs.
uint64_t hash64(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  x ^= x >> 33;
  return x;
}

namespace {

float lattice(uint64_t key, int64_t i, int64_t j) {
  const uint64_t h = hash64(key ^ hash64(uint64_t(i) * 0x9E3779B97F4A7C15ull + uint64_t(j)));
  return float(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

}  // namespace

float value_noise(uint64_t key, float x, float y, float cell) {
  const float u = x / cell, v = y / cell;
  const float fu = std::floor(u), fv = std::floor(v);
  const int64_t i = int64_t(fu), j = int64_t(fv);
  float tu = u - fu, tv = v - fv;
  tu = tu * tu * (3 - 2 * tu);  // smoothstep: no creases along the lattice lines
  tv = tv * tv * (3 - 2 * tv);
  const float a = lattice(key, i, j), b = lattice(key, i + 1, j);
  const float c = lattice(key, i, j + 1), d = lattice(key, i + 1, j + 1);
  return (a + (b - a) * tu) + ((c + (d - c) * tu) - (a + (b - a) * tu)) * tv;
}

}  // namespace cbst::data::synth
