// Road vehicles of the synthetic benchmark: car, truck, bus and tram ("train"), each a box
// seen from behind (or from the front when oncoming) with the side facing the camera's
// axis visible in perspective. The silhouettes and details (cabin, cargo box, window band,
// doors) are what tell the classes apart in the target style, where truck and bus share
// colours.
#include <cmath>

#include "data/synthetic_draw.h"

namespace cbst::data::synth {

VehicleSize vehicle_size(uint8_t kind) {
  switch (kind) {
    case kTruck: return {2.45f, 3.4f, 8.0f};
    case kBus: return {2.55f, 3.1f, 12.0f};
    case kTrain: return {2.65f, 3.7f, 30.0f};
    default: return {1.8f, 1.45f, 4.3f};
  }
}

namespace {

struct Wheels {
  float radius;
  std::vector<float> at;  // distances from the near end
};

Wheels wheels_of(uint8_t kind, float length) {
  switch (kind) {
    case kTruck: return {0.5f, {1.0f, 2.1f, length - 1.2f}};
    case kBus: return {0.5f, {2.4f, length - 3.0f}};
    case kTrain: return {0.38f, {2.0f, 3.6f, 14.2f, 15.8f, 26.4f, 28.0f}};
    default: return {0.33f, {0.8f, length - 0.85f}};
  }
}

// The near face in face coordinates: dx from the centre, Y up.
Paint near_face(const Vehicle& v, const VehicleSize& d, float dx, float Y) {
  Paint p{.cls = v.kind, .mat = kBody, .tint = v.tint};
  const float half = 0.5f * d.width, a = std::fabs(dx);
  const uint8_t lamp = v.oncoming ? kAccent : kLamp;
  switch (v.kind) {
    case kCar: {  // the lower body; the cabin is a box of its own (cabin_face)
      if (Y < 0.32f) return a > half - 0.32f && a < half - 0.04f ? Paint{v.kind, kDark, v.tint} : Paint{};
      if (Y < 0.5f) return Paint{v.kind, kTrim, v.tint};
      if (Y > 0.7f && Y < 0.86f && a > half - 0.32f) p.mat = lamp;
      if (!v.oncoming && Y < 0.66f && a < 0.26f) p.mat = kAccent;
      if (v.oncoming && Y < 0.68f && a < 0.45f) p.mat = kTrim;  // grille
      return p;
    }
    case kTruck: {
      if (Y < 0.55f) return a > half - 0.6f && a < half - 0.05f ? Paint{v.kind, kDark, v.tint} : Paint{};
      if (Y < 0.75f) return Paint{v.kind, kTrim, v.tint};
      if (v.oncoming) {
        if (Y < 3.0f) {
          if (Y > 1.8f && Y < 2.8f && a < half - 0.15f) p.mat = kDark;
          if (Y > 0.85f && Y < 1.4f && a < 0.6f) p.mat = kTrim;
          if (Y > 0.85f && Y < 1.1f && a > half - 0.35f) p.mat = kAccent;
        }
        return p;
      }
      if (a < 0.04f || a > half - 0.08f || Y > d.height - 0.1f) p.mat = kTrim;  // doors and frame
      if (Y > 0.8f && Y < 0.95f && a > half - 0.35f) p.mat = kLamp;
      return p;
    }
    case kBus: {
      if (Y < 0.35f) return a > half - 0.45f && a < half - 0.05f ? Paint{v.kind, kDark, v.tint} : Paint{};
      if (Y < 0.55f) return Paint{v.kind, kTrim, v.tint};
      if (v.oncoming) {
        if (Y > 1.0f && Y < 2.6f && a < half - 0.12f) p.mat = kDark;
        if (Y > 2.65f && Y < 2.95f && a < half - 0.4f) p.mat = kAccent;  // destination display
        if (Y > 0.7f && Y < 0.9f && a > half - 0.35f) p.mat = kAccent;
      } else {
        if (Y > 2.0f && Y < 2.85f && a < half - 0.2f) p.mat = kDark;
        if (Y > 0.7f && Y < 1.0f && a > half - 0.25f) p.mat = kLamp;
      }
      return p;
    }
    default: {  // tram
      if (Y < 0.5f) return a < half - 0.2f ? Paint{v.kind, kDark, v.tint} : Paint{};
      if (Y < 0.7f || Y > 3.35f) return Paint{v.kind, kTrim, v.tint};
      if (Y > 1.6f && Y < 3.1f && a < half - 0.15f) p.mat = kDark;
      if (Y > 1.0f && Y < 1.2f && a > half - 0.4f) p.mat = v.oncoming ? kAccent : kLamp;
      return p;
    }
  }
}

// The side in side coordinates: u from the near end (0..length), Y up.
Paint side_face(const Vehicle& v, const VehicleSize& d, float u, float Y) {
  Paint p{.cls = v.kind, .mat = kBody, .tint = v.tint, .light = 0.75f};
  const float L = d.length;
  switch (v.kind) {
    case kCar: {
      if (Y < 0.3f) return Paint{};
      if (Y < 0.42f) p.mat = kTrim;
      return p;
    }
    case kTruck: {
      const float uu = v.oncoming ? L - u : u;  // the cab is at the front
      if (Y < 0.55f) return Paint{};
      if (Y < 0.8f) return Paint{v.kind, kTrim, v.tint, 0.75f};
      if (uu < 5.8f) {
        if (uu < 0.08f || uu > 5.7f || Y > d.height - 0.1f) p.mat = kTrim;
        return p;
      }
      if (uu < 6.0f || Y > 3.0f) return Paint{};
      if (Y > 1.8f && Y < 2.7f && uu > 6.9f) p.mat = kDark;
      return p;
    }
    case kBus: {
      if (Y < 0.35f) return Paint{};
      if (Y > 1.45f && Y < 2.6f && u > 0.6f && u < L - 0.6f && std::fmod(u, 1.5f) > 0.15f) p.mat = kDark;
      if (Y > 0.95f && Y < 1.15f) p.mat = kTrim;
      return p;
    }
    default: {  // tram
      if (Y < 0.5f) return Paint{};
      if (Y < 0.7f || Y > 3.35f) return Paint{v.kind, kTrim, v.tint, 0.75f};
      const float door = std::fmod(u, 7.0f);
      if (door > 3.0f && door < 4.3f && Y < 3.0f) p.mat = Y > 1.6f ? kDark : kTrim;
      else if (Y > 1.5f && Y < 2.7f && std::fmod(u, 1.6f) > 0.2f) p.mat = kDark;
      if (std::fmod(u, 10.0f) < 0.08f) p.mat = kDark;  // joints between sections
      return p;
    }
  }
}

// The car's cabin: a narrower box on the body, with its screen facing the camera and side
// windows split by pillars. Cabin coordinates: dx across, u along from its near end.
Paint cabin_face(const Vehicle& v, float hw, float height, float dx, float Y) {
  const bool glass = std::fabs(dx) < hw - 0.1f && Y > 1.0f && Y < height - 0.07f;
  return Paint{.cls = kCar, .mat = uint8_t(glass ? kDark : kBody), .tint = v.tint};
}

Paint cabin_side(const Vehicle& v, float length, float height, float u, float Y) {
  const bool pillar = u < 0.1f || length - u < 0.1f || std::fabs(u - 0.5f * length) < 0.06f;
  const bool glass = !pillar && Y > 1.0f && Y < height - 0.07f;
  return Paint{.cls = kCar, .mat = uint8_t(glass ? kDark : kBody), .tint = v.tint, .light = 0.75f};
}

// The side toward the camera's axis shows when a box of half-width `half` centred at X is
// off to that side; 0 when neither side shows.
float visible_side(float X, float half) {
  if (X - half > 0.2f) return X - half;
  if (X + half < -0.2f) return X + half;
  return 0;
}

void draw_side_wheels(Canvas& c, const Camera& cam, const Vehicle& v, float Xs, float length) {
  const Wheels w = wheels_of(v.kind, length);
  for (float u : w.at) {
    const float Zw = v.Z + u;
    // A wheel on the side is foreshortened by |Xs| / Z horizontally.
    const float cx = cam.col(Xs, Zw), cy = cam.row(w.radius, Zw), ry = w.radius * cam.scale(Zw);
    const float rx = ry * std::fabs(Xs) / Zw;
    c.fill_ellipse(cx, cy, rx, ry, {.cls = v.kind, .mat = kDark, .tint = v.tint});
    c.fill_ellipse(cx, cy, 0.45f * rx, 0.45f * ry, {.cls = v.kind, .mat = kTrim, .tint = v.tint});
  }
}

// Contact shadow on the ground under the body.
void shadow(Canvas& c, const Camera& cam, float X0, float X1, float z0, float z1) {
  const int ya = std::max(0, int(cam.row(0, z1))), yb = std::min(c.height - 1, int(cam.row(0, z0)) + 1);
  for (int y = ya; y <= yb; ++y) {
    const float yc = y + 0.5f;
    if (yc <= cam.horizon + 0.5f) continue;
    const float Z = cam.ground_z(yc);
    const int xa = std::max(0, int(cam.col(X0, Z))), xb = std::min(c.width - 1, int(cam.col(X1, Z)));
    for (int x = xa; x <= xb; ++x) {
      const size_t i = size_t(y) * c.width + x;
      if (c.cls[i] == kRoad || c.cls[i] == kSidewalk) c.light[i] *= 0.5f;
    }
  }
}

}  // namespace

void draw_vehicle(Canvas& c, const Camera& cam, const Vehicle& v) {
  const VehicleSize d = vehicle_size(v.kind);
  const float half = 0.5f * d.width;
  shadow(c, cam, v.X - half - 0.1f, v.X + half + 0.1f, v.Z - 0.2f, v.Z + d.length);

  const float Xs = visible_side(v.X, half);
  if (v.kind == kCar) {
    // From a camera higher than the roof: body top first, then the cabin standing on it,
    // then the body's side and near face in front.
    const Paint top{.cls = kCar, .mat = kBody, .tint = v.tint, .light = 1.08f};
    top_plane(c, cam, 0.95f, v.X - half, v.X + half, v.Z, v.Z + d.length, [&](float, float) { return top; });
    const float c0 = v.Z + (v.oncoming ? 1.5f : 1.0f), c1 = v.Z + d.length - (v.oncoming ? 1.0f : 1.4f);
    const float hw = half - 0.12f;
    const float Xc = visible_side(v.X, hw);
    if (Xc != 0)
      side_plane(c, cam, Xc, c0, c1, 0.95f, d.height,
                 [&](float Z, float Y) { return cabin_side(v, c1 - c0, d.height, Z - c0, Y); });
    top_plane(c, cam, d.height, v.X - hw, v.X + hw, c0, c1, [&](float, float) { return top; });
    front_rect(c, cam, c0, v.X - hw, v.X + hw, 0.95f, d.height,
               [&](float X, float Y) { return cabin_face(v, hw, d.height, X - v.X, Y); });
  }
  if (Xs != 0) {
    const float top = v.kind == kCar ? 0.95f : d.height;
    side_plane(c, cam, Xs, v.Z, v.Z + d.length, 0, top,
               [&](float Z, float Y) { return side_face(v, d, Z - v.Z, Y); });
    draw_side_wheels(c, cam, v, Xs, d.length);
  }
  front_rect(c, cam, v.Z, v.X - half, v.X + half, 0, v.kind == kCar ? 0.95f : d.height,
             [&](float X, float Y) { return near_face(v, d, X - v.X, Y); });
  if (v.kind == kTrain) {  // pantograph on the roof
    const Proj p(cam, v.X, v.Z + 4.0f);
    const Paint frame{.cls = kTrain, .mat = kTrim, .tint = v.tint};
    c.fill_capsule(p.x(-0.5f), p.y(d.height), p.x(0.1f), p.y(d.height + 0.8f), 0.04f * p.s, frame);
    c.fill_capsule(p.x(0.1f), p.y(d.height + 0.8f), p.x(-0.3f), p.y(d.height + 1.4f), 0.04f * p.s, frame);
    c.fill_capsule(p.x(-0.8f), p.y(d.height + 1.4f), p.x(0.5f), p.y(d.height + 1.4f), 0.05f * p.s, frame);
  }
}

}  // namespace cbst::data::synth
