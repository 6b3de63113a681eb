// Internals of the synthetic benchmark (data/synthetic.h): the label canvas, the pinhole
// camera, drawing primitives, and the scene description shared by the layout, object and
// style stages. Not a public header.
//
// A scene is drawn once, as labels plus a few per-pixel attributes (material, instance
// tint, shading); the style stage then turns those attributes into colours for a domain.
// Drawing is painter's order (far to near), which is exact for this world: everything
// stands on the ground plane and the camera looks along the street.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "data/sample_rng.h"
#include "data/synthetic.h"

namespace cbst::data::synth {

// Cityscapes trainIds, by name.
enum Cls : uint8_t {
  kRoad, kSidewalk, kBuilding, kWall, kFence, kPole, kLight, kSign, kVegetation, kTerrain,
  kSky, kPerson, kRider, kCar, kTruck, kBus, kTrain, kMotorcycle, kBicycle, kNumClasses
};
constexpr uint8_t kSkip = 255;  // a shader's "leave this pixel alone"

// What part of an object a pixel shows. Picks the colour, never the label.
enum Mat : uint8_t {
  kBody,    // the class's own colour (instance tint picks a variant)
  kDark,    // glass, tyres, trousers, shadowed openings
  kLamp,    // lit lamps (tint picks red, amber, green), tail lights
  kAccent,  // skin, lane markings, sign faces
  kTrim,    // kerbs, frames, doors, trunks, sign borders
  kNumMats
};

struct Paint {
  uint8_t cls = kSkip;
  uint8_t mat = kBody;
  uint8_t tint = 0;    // per instance: 0..255
  float light = 1.0f;  // geometric shading (side faces, undersides)
};

struct Canvas {
  int width = 0, height = 0;
  std::vector<uint8_t> cls, mat, tint;
  std::vector<float> light;

  Canvas(int w, int h)
      : width(w), height(h), cls(size_t(w) * h, kSky), mat(size_t(w) * h, kBody),
        tint(size_t(w) * h, 0), light(size_t(w) * h, 1.0f) {}
  void set(int x, int y, const Paint& p) {
    if (p.cls == kSkip || x < 0 || y < 0 || x >= width || y >= height) return;
    const size_t i = size_t(y) * width + x;
    cls[i] = p.cls;
    mat[i] = p.mat;
    tint[i] = p.tint;
    light[i] = p.light;
  }
  // Pixels whose centres fall inside; a span narrower than one pixel still covers one, so
  // that far poles and frames stay visible (and labelled) rather than flickering away.
  void fill_rect(float x0, float y0, float x1, float y1, const Paint& p);
  void fill_disc(float cx, float cy, float r, const Paint& p);
  void fill_ring(float cx, float cy, float r_out, float r_in, const Paint& p);
  void fill_ellipse(float cx, float cy, float rx, float ry, const Paint& p);
  void fill_capsule(float ax, float ay, float bx, float by, float r, const Paint& p);
  void fill_convex(const std::vector<std::array<float, 2>>& pts, const Paint& p);
  // Darkens whatever is there (contact shadows under vehicles), keeping the labels.
  void shade_ellipse(float cx, float cy, float rx, float ry, float factor);
};

// Pinhole camera at height cam_height above the ground, looking along +Z; X to the right,
// Y up. A point (X, Y, Z) projects to col = vp_x + focal X / Z, row = horizon + focal
// (cam_height - Y) / Z. Lengths are in metres, so `focal / Z` pixels per metre.
struct Camera {
  float horizon = 0, vp_x = 0, focal = 0, cam_height = 0;
  float col(float X, float Z) const { return vp_x + focal * X / Z; }
  float row(float Y, float Z) const { return horizon + focal * (cam_height - Y) / Z; }
  float scale(float Z) const { return focal / Z; }
  // Depth of the ground seen at pixel row y (centre), for y below the horizon.
  float ground_z(float y) const { return focal * cam_height / (y - horizon); }
  // Depth at which column x meets the vertical plane at lateral position X.
  float plane_z(float x, float X) const { return focal * X / (x - vp_x); }
};

// A vertical plane parallel to the street at lateral X, between depths z_near..z_far and
// heights y_bottom..y_top. shader(Z, Y) -> Paint (cls kSkip to leave a pixel).
template <class Shader>
void side_plane(Canvas& c, const Camera& cam, float X, float z_near, float z_far, float y_bottom,
                float y_top, Shader&& shader) {
  float xa = cam.col(X, z_near), xb = cam.col(X, z_far);
  if (xa > xb) std::swap(xa, xb);
  const int x0 = std::max(0, int(std::floor(xa))), x1 = std::min(c.width - 1, int(std::ceil(xb)));
  for (int x = x0; x <= x1; ++x) {
    const float xc = x + 0.5f;
    if (std::fabs(xc - cam.vp_x) < 1e-3f) continue;
    const float Z = cam.plane_z(xc, X);
    if (!(Z >= z_near && Z <= z_far)) continue;
    const int ya = std::max(0, int(std::floor(cam.row(y_top, Z))));
    const int yb = std::min(c.height - 1, int(std::ceil(cam.row(y_bottom, Z))));
    for (int y = ya; y <= yb; ++y) {
      const float Y = cam.cam_height - (y + 0.5f - cam.horizon) * Z / cam.focal;
      if (Y < y_bottom || Y > y_top) continue;
      c.set(x, y, shader(Z, Y));
    }
  }
}

// A rectangle facing the camera at depth Z: lateral X0..X1, heights Y0..Y1.
// shader(X, Y) -> Paint.
template <class Shader>
void front_rect(Canvas& c, const Camera& cam, float Z, float X0, float X1, float Y0, float Y1,
                Shader&& shader) {
  const float s = cam.scale(Z);
  const int xa = std::max(0, int(std::floor(cam.col(X0, Z)))),
            xb = std::min(c.width - 1, int(std::ceil(cam.col(X1, Z))));
  const int ya = std::max(0, int(std::floor(cam.row(Y1, Z)))),
            yb = std::min(c.height - 1, int(std::ceil(cam.row(Y0, Z))));
  for (int y = ya; y <= yb; ++y) {
    const float Y = cam.cam_height - (y + 0.5f - cam.horizon) / s;
    if (Y < Y0 || Y > Y1) continue;
    for (int x = xa; x <= xb; ++x) {
      const float X = (x + 0.5f - cam.vp_x) / s;
      if (X < X0 || X > X1) continue;
      c.set(x, y, shader(X, Y));
    }
  }
}

// A horizontal rectangle at height Y (a roof or bonnet, seen from above): X0..X1, z0..z1.
// shader(X, Z) -> Paint. Nothing when Y is at or above the camera.
template <class Shader>
void top_plane(Canvas& c, const Camera& cam, float Y, float X0, float X1, float z0, float z1, Shader&& shader) {
  if (Y >= cam.cam_height - 0.01f) return;
  const int ya = std::max(0, int(std::floor(cam.row(Y, z1)))), yb = std::min(c.height - 1, int(std::ceil(cam.row(Y, z0))));
  for (int y = ya; y <= yb; ++y) {
    const float dy = y + 0.5f - cam.horizon;
    if (dy <= 0) continue;
    const float Z = cam.focal * (cam.cam_height - Y) / dy;
    if (Z < z0 || Z > z1) continue;
    const int xa = std::max(0, int(std::floor(cam.col(X0, Z)))), xb = std::min(c.width - 1, int(std::ceil(cam.col(X1, Z))));
    for (int x = xa; x <= xb; ++x) {
      const float X = (x + 0.5f - cam.vp_x) * Z / cam.focal;
      if (X >= X0 && X <= X1) c.set(x, y, shader(X, Z));
    }
  }
}

// ---- the scene (what the layout stage decides and the object stage reads)

enum class Back : uint8_t { building, trees };
enum class Front : uint8_t { none, wall, fence, hedge };

// A stretch of one side of the street between depths z0 < z1.
struct Segment {
  float z0 = 0, z1 = 0;
  Back back = Back::building;
  Front front = Front::none;
  float height = 10;        // building or tree-line height (m)
  float front_height = 1.5f;
  float setback = 0;        // building line beyond the verge (m)
  uint8_t tint = 0;
};

struct Side {
  float sign = 1;          // -1 left, +1 right
  float kerb = 4;          // |X| of the road edge
  float sidewalk = 3;      // width
  float verge = 0;         // terrain strip beyond the sidewalk (0 = none)
  std::vector<Segment> segments;  // contiguous, near to far
  float inner() const { return kerb + sidewalk; }          // sidewalk's outer edge
  float front_line() const { return kerb + sidewalk + verge; }
  const Segment* at(float Z) const {
    for (const Segment& s : segments)
      if (Z >= s.z0 && Z < s.z1) return &s;
    return nullptr;
  }
};

// Expected object counts per image; the domains differ here (the class-frequency shift).
struct Frequencies {
  float cars, trucks, buses, train_prob, motorcycles, bicycles, persons, poles_per_100m;
  float park_prob;  // chance that a stretch of street side is trees rather than buildings
};
const Frequencies& frequencies(SynthDomain domain);

// Camera and street geometry; the domains differ here too (the layout shift): the target's
// camera sits lower with a wider field of view, on narrower streets, so objects are smaller
// and the horizon lower in the frame, as a car-mounted camera in an old town sees them
// against a game's free camera. Ranges are uniform draws per image.
struct Layout {
  float horizon_lo, horizon_hi;  // horizon row as a fraction of the height
  float focal;                   // focal length in image heights
  float cam_height_lo, cam_height_hi;  // metres
  float road_lo, road_hi;        // road width, metres
};
const Layout& layout(SynthDomain domain);

struct Scene {
  Camera cam;
  Side left, right;
  bool tram = false;  // rails in the road (a train is drawn on them)
  float zebra_z = -1;  // a zebra crossing at this depth (< 0: none)
};

// Objects standing on the ground (data/synthetic_objects.cpp, synthetic_vehicles.cpp).
struct Tree {
  float X = 0, Z = 0, height = 6, crown = 2;  // crown radius (m)
  uint8_t tint = 0;
  uint64_t key = 0;  // crown outline noise
};
void draw_tree(Canvas& c, const Camera& cam, const Tree& tree);

struct Vehicle {
  uint8_t kind = kCar;  // kCar, kTruck, kBus, kTrain
  float X = 0, Z = 0;   // centre of the near face, its depth
  uint8_t tint = 0;
  bool oncoming = false;  // shows its front (and its cab at the near end)
};
struct VehicleSize {
  float width, height, length;
};
VehicleSize vehicle_size(uint8_t kind);
void draw_vehicle(Canvas& c, const Camera& cam, const Vehicle& v);

// An upright object at (X, Z) facing the camera: metres to pixels.
struct Proj {
  float cx, base, s;
  Proj(const Camera& cam, float X, float Z) : cx(cam.col(X, Z)), base(cam.row(0, Z)), s(cam.scale(Z)) {}
  float x(float dx) const { return cx + dx * s; }
  float y(float Y) const { return base - Y * s; }
};

// The layout stage: camera, street cross-section, side segments; draws sky, skyline,
// ground and side structures.
Scene make_scene(SampleRng& rng, SynthDomain domain, int width, int height);
void draw_background(Canvas& c, const Scene& scene, SampleRng& rng);
// The object stage: trees, poles with lights and signs, vehicles, people, two-wheelers.
void draw_objects(Canvas& c, const Scene& scene, SampleRng& rng, SynthDomain domain);
// The style stage: colours per domain, then the target's texture, light, cast, blur, noise.
// `gap_drawn` receives the image's gap (0 for the source).
Image render_style(const Canvas& c, SynthDomain domain, SampleRng& rng, SynthStyleGap style_gap, double& gap_drawn);

// Value noise in [-1, 1], smooth at scale `cell` pixels; a pure function of (key, x, y).
float value_noise(uint64_t key, float x, float y, float cell);
uint64_t hash64(uint64_t x);

}  // namespace cbst::data::synth
