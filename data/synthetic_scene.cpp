// The layout stage of the synthetic benchmark: camera, street cross-section and the
// structures along both sides; draws sky, the distant skyline, the ground (road with
// markings, kerbs, sidewalks, grass verges) and the facades, tree lines, walls, fences and
// hedges that line the street.
#include <cmath>

#include "data/synthetic_draw.h"

namespace cbst::data::synth {

const Frequencies& frequencies(SynthDomain domain) {
  // The target leans toward pedestrians and cyclists in a greener street; the source toward
  // traffic: the class-frequency shift that CBST's class balancing addresses.
  static const Frequencies source{.cars = 6.5f, .trucks = 0.6f, .buses = 0.5f, .train_prob = 0.3f,
                                  .motorcycles = 0.6f, .bicycles = 0.6f, .persons = 2.5f,
                                  .poles_per_100m = 4.0f, .park_prob = 0.3f};
  static const Frequencies target{.cars = 2.5f, .trucks = 0.4f, .buses = 0.4f, .train_prob = 0.25f,
                                  .motorcycles = 0.9f, .bicycles = 2.5f, .persons = 6.0f,
                                  .poles_per_100m = 5.0f, .park_prob = 0.4f};
  return domain == SynthDomain::source ? source : target;
}

const Layout& layout(SynthDomain domain) {
  static const Layout source{.horizon_lo = 0.38f, .horizon_hi = 0.48f, .focal = 1.25f, .cam_height_lo = 2.0f,
                             .cam_height_hi = 2.6f, .road_lo = 6.5f, .road_hi = 11.0f};
  static const Layout target{.horizon_lo = 0.42f, .horizon_hi = 0.52f, .focal = 1.05f, .cam_height_lo = 1.4f,
                             .cam_height_hi = 2.0f, .road_lo = 5.5f, .road_hi = 9.0f};
  return domain == SynthDomain::source ? source : target;
}

namespace {

float uni(SampleRng& rng, float lo, float hi) { return float(rng.uniform(lo, hi)); }
bool chance(SampleRng& rng, float p) { return rng.uniform() < p; }
uint8_t byte(SampleRng& rng) { return uint8_t(rng.below(256)); }

std::vector<Segment> make_segments(SampleRng& rng, float park_prob) {
  std::vector<Segment> out;
  float z = 0.5f;
  while (z < 400) {
    Segment s;
    s.z0 = z;
    s.tint = byte(rng);
    if (chance(rng, park_prob)) {
      s.back = Back::trees;
      s.z1 = z + uni(rng, 10, 40);
      s.height = uni(rng, 6, 12);
      s.setback = uni(rng, 2, 10);
      const float r = uni(rng, 0, 1);
      s.front = r < 0.35f ? Front::fence : r < 0.6f ? Front::hedge : r < 0.7f ? Front::wall : Front::none;
    } else {
      s.back = Back::building;
      s.z1 = z + uni(rng, 10, 45);
      s.height = uni(rng, 7, 24);
      s.setback = chance(rng, 0.7f) ? 0.0f : uni(rng, 1, 5);
      const float r = uni(rng, 0, 1);
      s.front = r < 0.2f ? Front::wall : r < 0.3f ? Front::fence : Front::none;
    }
    s.front_height = s.front == Front::wall    ? uni(rng, 1.0f, 2.6f)
                     : s.front == Front::fence ? uni(rng, 1.0f, 2.0f)
                                               : uni(rng, 0.8f, 1.6f);
    out.push_back(s);
    z = s.z1;
  }
  return out;
}

Side make_side(SampleRng& rng, float sign, float kerb, const Frequencies& f) {
  Side s;
  s.sign = sign;
  s.kerb = kerb;
  s.sidewalk = uni(rng, 2.0f, 4.5f);
  s.verge = chance(rng, 0.4f) ? uni(rng, 1.0f, 3.0f) : 0.0f;
  s.segments = make_segments(rng, f.park_prob);
  return s;
}

// Facade pattern in facade coordinates (u along the wall, Y up): windows on a floor grid,
// a shopfront band on the ground floor, a cornice at the top.
Paint facade(float u, float Y, float height, uint8_t tint, float light) {
  Paint p{.cls = kBuilding, .mat = kBody, .tint = tint, .light = light};
  const float bay = 2.4f + 1.2f * float(tint % 3) / 2.0f;  // window spacing varies per building
  const float fu = u / bay - std::floor(u / bay);
  if (Y > height - 0.5f) {
    p.mat = kTrim;
  } else if (Y < 3.4f) {
    const float shop = u / (2 * bay) - std::floor(u / (2 * bay));
    if (Y > 0.5f && Y < 2.7f && shop > 0.12f && shop < 0.75f) p.mat = kDark;
    if (Y < 0.35f) p.mat = kTrim;
  } else {
    const float fy = (Y - 3.4f) / 3.1f - std::floor((Y - 3.4f) / 3.1f);
    if (fy > 0.3f && fy < 0.8f && fu > 0.28f && fu < 0.72f) p.mat = kDark;
  }
  return p;
}

void draw_sky_and_skyline(Canvas& c, const Scene& scene, SampleRng& rng) {
  const Camera& cam = scene.cam;
  const int h = c.height;
  int x = 0;
  while (x < c.width) {
    const int run = int(uni(rng, 0.03f, 0.12f) * c.width) + 1;
    const bool building = chance(rng, 0.55f);
    const float top = building ? uni(rng, 0.01f, 0.10f) * h : uni(rng, 0.015f, 0.06f) * h;
    const uint64_t key = rng.below(1u << 30);
    const uint8_t tint = byte(rng);
    for (int xi = x; xi < std::min(c.width, x + run); ++xi) {
      // Tree lines get a bumpy top; distant blocks a flat one.
      const float t = building ? top : top * (0.7f + 0.3f * value_noise(key, float(xi), 0, 0.02f * h + 1));
      const Paint p{.cls = uint8_t(building ? kBuilding : kVegetation), .mat = kBody, .tint = tint,
                    .light = building ? 0.85f : 1.0f};
      for (int y = std::max(0, int(cam.horizon - t)); y < std::min(h, int(cam.horizon) + 2); ++y) c.set(xi, y, p);
    }
    x += run;
  }
}

void draw_ground(Canvas& c, const Scene& scene) {
  const Camera& cam = scene.cam;
  const float road = scene.left.kerb + scene.right.kerb;
  const int lanes = std::max(2, int(std::lround(road / 3.3f)));
  const float lane_w = road / float(lanes);
  const float tram_x = 0.5f * (scene.right.kerb - scene.left.kerb);
  for (int y = std::max(0, int(std::floor(cam.horizon))); y < c.height; ++y) {
    const float yc = y + 0.5f;
    if (yc <= cam.horizon + 0.05f) continue;
    const float Z = cam.ground_z(yc);
    const float px_per_m = cam.scale(Z);
    for (int x = 0; x < c.width; ++x) {
      const float X = (x + 0.5f - cam.vp_x) / px_per_m;
      const Side& side = X < 0 ? scene.left : scene.right;
      const float a = std::fabs(X);
      Paint p{.cls = kRoad, .mat = kBody};
      if (a < side.kerb) {
        const float from_left = X + scene.left.kerb;
        const float lane_pos = from_left / lane_w - std::lround(from_left / lane_w);
        const bool dash = std::fmod(Z, 10.0f) < 3.5f;
        const bool edge = side.kerb - a > 0.3f && side.kerb - a < 0.45f;
        if ((dash && std::fabs(lane_pos) * lane_w < 0.08f && from_left > 1 && from_left < road - 1) || edge)
          p.mat = kAccent;
        if (scene.zebra_z > 0 && Z > scene.zebra_z && Z < scene.zebra_z + 3.5f &&
            std::fmod(X + 50.0f, 1.0f) < 0.5f)
          p.mat = kAccent;
        if (scene.tram && std::fabs(std::fabs(X - tram_x) - 0.72f) < 0.05f) p.mat = kTrim;
      } else if (a < side.kerb + 0.25f) {
        p = {.cls = kSidewalk, .mat = kTrim};
      } else if (a < side.inner()) {
        p = {.cls = kSidewalk, .mat = kBody};
      } else if (a < side.front_line()) {
        p = {.cls = kTerrain, .mat = kBody};
      } else {
        const Segment* seg = side.at(Z);
        const bool park = seg && seg->back == Back::trees;
        p = {.cls = uint8_t(park ? kTerrain : kSidewalk), .mat = kBody, .tint = uint8_t(park ? 0 : 1)};
      }
      c.set(x, y, p);
    }
  }
}

// Structures farther out than the front line: building facades (with their near end faces)
// and tree lines, far to near so that nearer ones cover farther ones.
void draw_back(Canvas& c, const Scene& scene, const Side& side, SampleRng& rng) {
  const Camera& cam = scene.cam;
  const float lit = side.sign < 0 ? 0.92f : 0.74f;  // light from the left
  for (auto it = side.segments.rbegin(); it != side.segments.rend(); ++it) {
    const Segment& s = *it;
    const float X = side.sign * (side.front_line() + s.setback);
    if (s.back == Back::building) {
      side_plane(c, cam, X, s.z0, s.z1, 0, s.height,
                 [&](float Z, float Y) { return facade(Z - s.z0, Y, s.height, s.tint, lit); });
      const float X0 = std::min(X, X + side.sign * 14), X1 = std::max(X, X + side.sign * 14);
      if (s.z0 > 1)
        front_rect(c, cam, s.z0, X0, X1, 0, s.height, [&](float Xf, float Y) {
          return facade(std::fabs(Xf), Y, s.height, s.tint, 1.0f);
        });
    } else {
      const uint64_t key = rng.below(1u << 30);
      const float Xb = side.sign * (side.front_line() + s.setback + 4);
      side_plane(c, cam, Xb, s.z0, s.z1, 0, s.height * 1.3f, [&](float Z, float Y) {
        const float top = s.height * (0.85f + 0.3f * value_noise(key, Z, 0, 3.0f));
        return Y < top ? Paint{.cls = kVegetation, .mat = kBody, .tint = s.tint, .light = 0.85f}
                       : Paint{};
      });
      // Free-standing trees in front of the tree line, far to near.
      const int n = int((s.z1 - s.z0) / uni(rng, 5, 12));
      std::vector<float> zs;
      for (int i = 0; i < n; ++i) zs.push_back(uni(rng, s.z0, s.z1));
      std::sort(zs.rbegin(), zs.rend());
      for (float z : zs) {
        const float Xt = side.sign * (side.front_line() + uni(rng, 1.0f, s.setback + 2));
        draw_tree(c, cam, {.X = Xt, .Z = z, .height = uni(rng, 5, 10), .crown = uni(rng, 1.5f, 3.0f),
                           .tint = byte(rng), .key = rng.below(1u << 30)});
      }
    }
  }
}

// Walls, fences and hedges along the front line, in front of the back structures.
void draw_front(Canvas& c, const Scene& scene, const Side& side, SampleRng& rng) {
  const Camera& cam = scene.cam;
  const float X = side.sign * side.front_line();
  const float lit = side.sign < 0 ? 0.95f : 0.8f;
  for (auto it = side.segments.rbegin(); it != side.segments.rend(); ++it) {
    const Segment& s = *it;
    const float h = s.front_height;
    const uint64_t key = rng.below(1u << 30);
    if (s.front == Front::wall) {
      side_plane(c, cam, X, s.z0, s.z1, 0, h, [&](float, float Y) {
        return Paint{.cls = kWall, .mat = uint8_t(Y > h - 0.15f ? kTrim : kBody), .tint = s.tint, .light = lit};
      });
    } else if (s.front == Front::fence) {
      side_plane(c, cam, X, s.z0, s.z1, 0, h, [&](float Z, float Y) {
        // Posts every 2.5 m and two rails hold vertical slats with gaps between them.
        const bool post = std::fmod(Z, 2.5f) < 0.15f;
        const bool rail = std::fabs(Y - 0.25f) < 0.06f || Y > h - 0.08f;
        const bool slat = std::fmod(Z, 0.3f) < 0.17f;
        const uint8_t mat = post || rail ? kTrim : slat ? kBody : kDark;
        return Paint{.cls = kFence, .mat = mat, .tint = s.tint, .light = lit};
      });
    } else if (s.front == Front::hedge) {
      side_plane(c, cam, X, s.z0, s.z1, 0, h + 0.4f, [&](float Z, float Y) {
        const float top = h + 0.25f * value_noise(key, Z, 0, 0.8f);
        return Y < top ? Paint{.cls = kVegetation, .mat = kBody, .tint = s.tint, .light = lit} : Paint{};
      });
    }
  }
}

}  // namespace

Scene make_scene(SampleRng& rng, SynthDomain domain, int width, int height) {
  const Frequencies& f = frequencies(domain);
  const Layout& l = layout(domain);
  Scene s;
  s.cam.horizon = height * uni(rng, l.horizon_lo, l.horizon_hi);
  s.cam.vp_x = width * uni(rng, 0.38f, 0.62f);
  // 1.25 heights: about 44 degrees vertical; lengths scale with the image.
  s.cam.focal = l.focal * height;
  s.cam.cam_height = uni(rng, l.cam_height_lo, l.cam_height_hi);
  const float road = uni(rng, l.road_lo, l.road_hi);
  const float offset = uni(rng, -0.25f, 0.25f) * road;  // where in the road the camera drives
  s.left = make_side(rng, -1, std::max(1.6f, 0.5f * road + offset), f);
  s.right = make_side(rng, 1, std::max(1.6f, 0.5f * road - offset), f);
  s.tram = chance(rng, f.train_prob);
  s.zebra_z = chance(rng, 0.25f) ? uni(rng, 9, 30) : -1;
  return s;
}

void draw_background(Canvas& c, const Scene& scene, SampleRng& rng) {
  draw_sky_and_skyline(c, scene, rng);
  draw_ground(c, scene);
  draw_back(c, scene, scene.left, rng);
  draw_back(c, scene, scene.right, rng);
  draw_front(c, scene, scene.left, rng);
  draw_front(c, scene, scene.right, rng);
}

}  // namespace cbst::data::synth
