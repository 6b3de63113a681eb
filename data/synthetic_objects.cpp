// The object stage of the synthetic benchmark: what stands on the ground. Trees, poles
// (carrying traffic signs, traffic lights, street lamps), people, riders on bicycles and
// motorcycles, parked two-wheelers, and the road vehicles; placed by the domain's
// frequencies and drawn far to near.
#include <cmath>
#include <functional>

#include "data/synthetic_draw.h"

namespace cbst::data::synth {

namespace {

float uni(SampleRng& rng, float lo, float hi) { return float(rng.uniform(lo, hi)); }
bool chance(SampleRng& rng, float p) { return rng.uniform() < p; }
uint8_t byte(SampleRng& rng) { return uint8_t(rng.below(256)); }

int poisson(SampleRng& rng, float mean) {
  const double limit = std::exp(-double(mean));
  double prod = rng.uniform();
  int k = 0;
  while (prod > limit && k < 100) {
    prod *= rng.uniform();
    ++k;
  }
  return k;
}

// ---- poles, signs, lights

enum class PoleKind { sign, light, light_arm, lamp, plain };

void draw_traffic_light(Canvas& c, const Proj& p, float dx, float y_top, uint8_t lit) {
  const Paint box{.cls = kLight, .mat = kBody};
  c.fill_rect(p.x(dx - 0.18f), p.y(y_top), p.x(dx + 0.18f), p.y(y_top - 0.95f), box);
  const int on = lit / 86;  // 0 red (top), 1 amber, 2 green
  for (int k = 0; k < 3; ++k) {
    const Paint lamp{.cls = kLight, .mat = uint8_t(k == on ? kLamp : kDark), .tint = uint8_t(k * 86 + 40)};
    c.fill_disc(p.x(dx), p.y(y_top - 0.17f - 0.3f * k), 0.1f * p.s, lamp);
  }
}

void draw_pole(Canvas& c, const Camera& cam, float X, float Z, float side_sign, PoleKind kind, SampleRng& rng) {
  const Proj p(cam, X, Z);
  const Paint pole{.cls = kPole, .mat = kBody};
  const float height = kind == PoleKind::lamp ? uni(rng, 6, 8) : kind == PoleKind::light_arm ? uni(rng, 5, 6) : uni(rng, 2.8f, 4.0f);
  c.fill_rect(p.x(-0.1f), p.y(height), p.x(0.1f), p.y(0), pole);
  const float toward_road = -side_sign;
  if (kind == PoleKind::sign) {
    const uint8_t tint = byte(rng);
    const float cy = height - 0.45f;
    const Paint border{.cls = kSign, .mat = kTrim, .tint = tint}, face{.cls = kSign, .mat = kAccent, .tint = tint};
    switch (tint % 3) {
      case 0:  // round: prohibition or mandatory
        c.fill_disc(p.x(0), p.y(cy), 0.38f * p.s, border);
        c.fill_disc(p.x(0), p.y(cy), 0.27f * p.s, face);
        break;
      case 1:  // triangle: warning
        c.fill_convex({{p.x(-0.42f), p.y(cy - 0.3f)}, {p.x(0.42f), p.y(cy - 0.3f)}, {p.x(0), p.y(cy + 0.42f)}}, border);
        c.fill_convex({{p.x(-0.26f), p.y(cy - 0.2f)}, {p.x(0.26f), p.y(cy - 0.2f)}, {p.x(0), p.y(cy + 0.24f)}}, face);
        break;
      default:  // rectangle: information
        c.fill_rect(p.x(-0.45f), p.y(cy + 0.32f), p.x(0.45f), p.y(cy - 0.32f), face);
        break;
    }
  } else if (kind == PoleKind::light) {
    draw_traffic_light(c, p, 0, height + 0.95f, byte(rng));
  } else if (kind == PoleKind::light_arm) {
    // A mast arm reaching over the road with a light hanging from it.
    const float reach = uni(rng, 2.5f, 4.5f);
    c.fill_capsule(p.x(0), p.y(height - 0.1f), p.x(toward_road * reach), p.y(height - 0.1f), 0.08f * p.s, pole);
    draw_traffic_light(c, p, toward_road * reach, height - 0.15f, byte(rng));
    draw_traffic_light(c, p, toward_road * reach * 0.45f, height - 0.15f, byte(rng));
  } else if (kind == PoleKind::lamp) {
    const float reach = uni(rng, 1.0f, 2.0f);
    c.fill_capsule(p.x(0), p.y(height), p.x(toward_road * reach), p.y(height + 0.3f), 0.06f * p.s, pole);
    c.fill_rect(p.x(toward_road * reach - 0.3f), p.y(height + 0.4f), p.x(toward_road * reach + 0.3f),
                p.y(height + 0.2f), {.cls = kPole, .mat = kTrim});
  }
}

// ---- people and two-wheelers

// A pedestrian facing the camera or away: legs, torso, arms, head.
void draw_person(Canvas& c, const Proj& p, uint8_t cls, float height, uint8_t tint, float stride) {
  const Paint shirt{.cls = cls, .mat = kBody, .tint = tint}, legs{.cls = cls, .mat = kDark, .tint = tint},
      skin{.cls = cls, .mat = kAccent, .tint = tint};
  const float h = height, hip = 0.5f * h, shoulder = 0.82f * h;
  const float leg_r = 0.055f * h * p.s;
  c.fill_capsule(p.x(-0.06f * h), p.y(hip), p.x(-0.06f * h - stride), p.y(0.03f * h), leg_r, legs);
  c.fill_capsule(p.x(0.06f * h), p.y(hip), p.x(0.06f * h + stride), p.y(0.03f * h), leg_r, legs);
  c.fill_convex({{p.x(-0.13f * h), p.y(shoulder)}, {p.x(0.13f * h), p.y(shoulder)},
                 {p.x(0.11f * h), p.y(hip - 0.03f * h)}, {p.x(-0.11f * h), p.y(hip - 0.03f * h)}},
                shirt);
  c.fill_capsule(p.x(-0.15f * h), p.y(shoulder - 0.02f * h), p.x(-0.17f * h), p.y(0.5f * h), 0.035f * h * p.s, shirt);
  c.fill_capsule(p.x(0.15f * h), p.y(shoulder - 0.02f * h), p.x(0.17f * h), p.y(0.5f * h), 0.035f * h * p.s, shirt);
  c.fill_disc(p.x(0), p.y(0.91f * h), 0.07f * h * p.s, skin);
}

// A bicycle or motorcycle in side view; dir = +1 facing right. Returns nothing: the rider,
// if any, is drawn on top by draw_rider.
void draw_two_wheeler(Canvas& c, const Proj& p, uint8_t cls, float dir, uint8_t tint) {
  const Paint frame{.cls = cls, .mat = kBody, .tint = tint}, tyre{.cls = cls, .mat = kDark, .tint = tint},
      metal{.cls = cls, .mat = kTrim, .tint = tint};
  auto X = [&](float x) { return p.x(dir * x); };
  if (cls == kBicycle) {
    const float r = 0.34f, t = 0.06f;
    for (float wx : {-0.52f, 0.52f})
      c.fill_ring(X(wx), p.y(r), r * p.s, std::min((r - t) * p.s, r * p.s - 1.0f), tyre);  // >= 1 px thick
    const float fr = 0.035f * p.s;
    const float rh[2] = {-0.52f, r}, fh[2] = {0.52f, r}, bb[2] = {-0.05f, 0.3f}, st[2] = {-0.18f, 0.85f},
                ht[2] = {0.38f, 0.8f}, bar[2] = {0.33f, 1.0f};
    auto bar_to = [&](const float* a, const float* b) { c.fill_capsule(X(a[0]), p.y(a[1]), X(b[0]), p.y(b[1]), fr, frame); };
    bar_to(rh, bb); bar_to(rh, st); bar_to(bb, st); bar_to(st, ht); bar_to(bb, ht); bar_to(ht, fh); bar_to(ht, bar);
    c.fill_rect(X(-0.3f) - (dir < 0 ? 0.2f * p.s : 0), p.y(0.92f), X(-0.3f) + (dir > 0 ? 0.2f * p.s : 0), p.y(0.86f), tyre);
  } else {
    const float r = 0.32f;
    for (float wx : {-0.68f, 0.68f}) {
      c.fill_disc(X(wx), p.y(r), r * p.s, tyre);
      c.fill_disc(X(wx), p.y(r), 0.45f * r * p.s, metal);
    }
    c.fill_convex({{X(-0.55f), p.y(0.45f)}, {X(0.45f), p.y(0.4f)}, {X(0.5f), p.y(0.85f)},
                   {X(0.1f), p.y(0.95f)}, {X(-0.6f), p.y(0.8f)}}, frame);
    c.fill_rect(std::min(X(-0.7f), X(0.0f)), p.y(0.95f), std::max(X(-0.7f), X(0.0f)), p.y(0.82f), tyre);  // seat
    c.fill_capsule(X(0.68f), p.y(r), X(0.45f), p.y(1.1f), 0.05f * p.s, metal);  // fork
    c.fill_capsule(X(0.35f), p.y(1.15f), X(0.55f), p.y(1.1f), 0.04f * p.s, metal);  // handlebar
  }
}

// A rider in side view, seated on the two-wheeler drawn at the same place.
void draw_rider(Canvas& c, const Proj& p, uint8_t vehicle, float dir, uint8_t tint) {
  const Paint shirt{.cls = kRider, .mat = kBody, .tint = tint}, legs{.cls = kRider, .mat = kDark, .tint = tint},
      skin{.cls = kRider, .mat = kAccent, .tint = tint};
  auto X = [&](float x) { return p.x(dir * x); };
  const bool moto = vehicle == kMotorcycle;
  const float hip_x = moto ? -0.3f : -0.18f, hip_y = moto ? 0.98f : 0.95f;
  const float sh_x = moto ? -0.05f : 0.08f, sh_y = hip_y + 0.55f;
  const float knee_x = moto ? 0.15f : 0.12f, knee_y = moto ? 0.75f : 0.68f;
  const float foot_x = moto ? 0.0f : -0.05f, foot_y = moto ? 0.4f : 0.25f;
  c.fill_capsule(X(hip_x), p.y(hip_y), X(knee_x), p.y(knee_y), 0.08f * p.s, legs);
  c.fill_capsule(X(knee_x), p.y(knee_y), X(foot_x), p.y(foot_y), 0.065f * p.s, legs);
  c.fill_capsule(X(hip_x), p.y(hip_y), X(sh_x), p.y(sh_y), 0.14f * p.s, shirt);
  c.fill_capsule(X(sh_x), p.y(sh_y - 0.05f), X(moto ? 0.45f : 0.33f), p.y(moto ? 1.12f : 1.0f), 0.05f * p.s, shirt);
  const Paint head = moto ? Paint{.cls = kRider, .mat = kDark, .tint = tint} : skin;  // helmet
  c.fill_disc(X(sh_x + 0.06f), p.y(sh_y + 0.2f), (moto ? 0.14f : 0.12f) * p.s, head);
}

// ---- placement

struct Item {
  float Z;
  std::function<void()> draw;
};

float sample_z(SampleRng& rng, float z_near, float z_far) {
  // Denser near the camera, so that objects are mostly large enough to learn at 128x256.
  return z_near + (z_far - z_near) * float(std::pow(rng.uniform(), 1.5));
}

}  // namespace

void draw_tree(Canvas& c, const Camera& cam, const Tree& t) {
  const Proj p(cam, t.X, t.Z);
  const Paint trunk{.cls = kVegetation, .mat = kTrim, .tint = t.tint},
      leaves{.cls = kVegetation, .mat = kBody, .tint = t.tint};
  c.fill_rect(p.x(-0.14f), p.y(t.height * 0.6f), p.x(0.14f), p.y(0), trunk);
  const float cy = t.height - t.crown;
  c.fill_disc(p.x(0), p.y(cy), t.crown * p.s, leaves);
  for (int k = 0; k < 4; ++k) {
    const float a = float(hash64(t.key + k) % 628) / 100.0f;
    const float r = t.crown * (0.5f + 0.2f * float(hash64(t.key + 7 * k + 1) % 100) / 100.0f);
    c.fill_disc(p.x(0.7f * t.crown * std::cos(a)), p.y(cy + 0.6f * t.crown * std::sin(a)), r * p.s, leaves);
  }
}

void draw_objects(Canvas& c, const Scene& scene, SampleRng& rng, SynthDomain domain) {
  const Frequencies& f = frequencies(domain);
  const Camera& cam = scene.cam;
  const float z_near = cam.ground_z(float(c.height)) * 0.9f;  // a little below the bottom edge
  std::vector<Item> items;

  // Street furniture and trees along each side.
  for (const Side* side : {&scene.left, &scene.right}) {
    const float s = side->sign;
    for (float z = uni(rng, 2, 12); z < 120; z += 100.0f / f.poles_per_100m * uni(rng, 0.5f, 1.5f)) {
      const float r = uni(rng, 0, 1);
      const PoleKind kind = r < 0.4f ? PoleKind::sign : r < 0.58f ? PoleKind::light : r < 0.7f ? PoleKind::light_arm
                            : r < 0.9f ? PoleKind::lamp : PoleKind::plain;
      const float X = s * (side->kerb + 0.45f);
      const uint64_t sub = rng.below(1u << 30);
      items.push_back({z, [&c, &cam, X, z, s, kind, sub] {
                         SampleRng r2(sub, 0, 0);
                         draw_pole(c, cam, X, z, s, kind, r2);
                       }});
    }
    const bool verge_trees = side->verge > 0, pit_trees = chance(rng, 0.25f);
    if (verge_trees || pit_trees) {
      for (float z = uni(rng, 3, 10); z < 150; z += uni(rng, 7, 14)) {
        const Tree t{.X = s * (verge_trees ? side->inner() + 0.5f * side->verge : side->inner() - 0.7f), .Z = z,
                     .height = uni(rng, 4.5f, 8.0f), .crown = uni(rng, 1.2f, 2.2f), .tint = byte(rng),
                     .key = rng.below(1u << 30)};
        items.push_back({z, [&c, &cam, t] { draw_tree(c, cam, t); }});
      }
    }
  }

  // Vehicles in lanes (oncoming on the left of the camera's lane) and parked at the kerbs.
  struct Slot {
    float X, z0, z1;
  };
  std::vector<Slot> taken;
  const float road = scene.left.kerb + scene.right.kerb;
  const int lanes = std::max(2, int(std::lround(road / 3.3f)));
  const float lane_w = road / float(lanes);
  const float tram_x = 0.5f * (scene.right.kerb - scene.left.kerb);
  auto place = [&](uint8_t kind, float X, float z_lo, float z_hi) -> bool {
    const VehicleSize d = vehicle_size(kind);
    for (int attempt = 0; attempt < 8; ++attempt) {
      const float Z = sample_z(rng, std::max(z_lo, z_near), z_hi);
      bool clash = false;
      for (const Slot& t : taken)
        clash |= std::fabs(t.X - X) < 0.5f * d.width + 1.2f && Z < t.z1 + 1.0f && Z + d.length > t.z0 - 1.0f;
      if (clash) continue;
      taken.push_back({X, Z, Z + d.length});
      const Vehicle v{.kind = kind, .X = X, .Z = Z, .tint = byte(rng), .oncoming = X < -1.2f};
      items.push_back({Z, [&c, &cam, v] { draw_vehicle(c, cam, v); }});
      return true;
    }
    return false;
  };
  if (scene.tram) place(kTrain, tram_x, 8, 45);
  auto lane_x = [&](SampleRng& r) { return -scene.left.kerb + lane_w * (0.5f + float(r.below(uint64_t(lanes)))); };
  for (int k = poisson(rng, f.cars); k > 0; --k) {
    if (chance(rng, 0.35f)) {
      const Side& side = chance(rng, 0.5f) ? scene.left : scene.right;
      place(kCar, side.sign * (side.kerb - 1.1f), 5, 45);
    } else {
      place(kCar, lane_x(rng) + uni(rng, -0.3f, 0.3f), 6, 60);
    }
  }
  for (int k = poisson(rng, f.trucks); k > 0; --k) place(kTruck, lane_x(rng), 8, 50);
  for (int k = poisson(rng, f.buses); k > 0; --k) place(kBus, lane_x(rng), 8, 50);

  // People on the sidewalks (some in small groups) and crossing at the zebra.
  auto sidewalk_x = [&](const Side& side) { return side.sign * (side.kerb + 0.5f + uni(rng, 0, side.sidewalk - 0.7f)); };
  for (int k = poisson(rng, f.persons); k > 0; --k) {
    const Side& side = chance(rng, 0.5f) ? scene.left : scene.right;
    const bool crossing = scene.zebra_z > 0 && chance(rng, 0.25f);
    const float X = crossing ? uni(rng, -scene.left.kerb, scene.right.kerb) : sidewalk_x(side);
    const float Z = crossing ? scene.zebra_z + uni(rng, 0.3f, 3.2f) : sample_z(rng, z_near, 40);
    const int group = chance(rng, 0.25f) ? 2 + int(rng.below(2)) : 1;
    for (int g = 0; g < group; ++g) {
      const float Xg = X + 0.6f * g * (chance(rng, 0.5f) ? 1 : -1), Zg = Z + uni(rng, -0.5f, 0.5f);
      const float h = uni(rng, 1.55f, 1.9f), stride = uni(rng, 0, 0.12f) * h;
      const uint8_t tint = byte(rng);
      items.push_back({Zg, [&c, &cam, Xg, Zg, h, stride, tint] {
                         draw_person(c, Proj(cam, Xg, Zg), kPerson, h, tint, stride);
                       }});
    }
  }

  // Two-wheelers: ridden ones cross the road or ride along its edge; parked ones stand on
  // the sidewalk across it. Both in side view, where wheels and frame are visible.
  auto two_wheeler = [&](uint8_t cls) {
    const bool ridden = chance(rng, cls == kMotorcycle ? 0.7f : 0.55f);
    const Side& side = chance(rng, 0.5f) ? scene.left : scene.right;
    float X, Z;
    if (ridden) {
      X = chance(rng, 0.5f) ? uni(rng, -scene.left.kerb + 0.8f, scene.right.kerb - 0.8f) : side.sign * (side.kerb - 0.8f);
      Z = sample_z(rng, z_near + 1, 35);
    } else {
      X = sidewalk_x(side);
      Z = sample_z(rng, z_near + 1, 35);
    }
    const float dir = chance(rng, 0.5f) ? 1.0f : -1.0f;
    const uint8_t tint = byte(rng), rider_tint = byte(rng);
    items.push_back({Z, [&c, &cam, cls, X, Z, dir, tint, rider_tint, ridden] {
                       const Proj p(cam, X, Z);
                       draw_two_wheeler(c, p, cls, dir, tint);
                       if (ridden) draw_rider(c, p, cls, dir, rider_tint);
                     }});
  };
  for (int k = poisson(rng, f.bicycles); k > 0; --k) two_wheeler(kBicycle);
  for (int k = poisson(rng, f.motorcycles); k > 0; --k) two_wheeler(kMotorcycle);

  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.Z > b.Z; });
  for (const Item& it : items) it.draw();
}

}  // namespace cbst::data::synth
