// Label tables: cityscapesScripts labels.py (labelId/trainId/colour), SYNTHIA-RAND-CITYSCAPES
// class ids (its README), CBST's 16-class space and the NTHU 13-class protocol.
#include "data/label_map.h"

#include <cstdio>
#include <mutex>

#include "engine/check.h"

namespace cbst::data {

namespace {

const std::vector<ClassInfo>& cityscapes_classes() {
  static const std::vector<ClassInfo> t = {
      {"road", 0, 7, {128, 64, 128}},        {"sidewalk", 1, 8, {244, 35, 232}},
      {"building", 2, 11, {70, 70, 70}},     {"wall", 3, 12, {102, 102, 156}},
      {"fence", 4, 13, {190, 153, 153}},     {"pole", 5, 17, {153, 153, 153}},
      {"traffic light", 6, 19, {250, 170, 30}}, {"traffic sign", 7, 20, {220, 220, 0}},
      {"vegetation", 8, 21, {107, 142, 35}}, {"terrain", 9, 22, {152, 251, 152}},
      {"sky", 10, 23, {70, 130, 180}},       {"person", 11, 24, {220, 20, 60}},
      {"rider", 12, 25, {255, 0, 0}},        {"car", 13, 26, {0, 0, 142}},
      {"truck", 14, 27, {0, 0, 70}},         {"bus", 15, 28, {0, 60, 100}},
      {"train", 16, 31, {0, 80, 100}},       {"motorcycle", 17, 32, {0, 0, 230}},
      {"bicycle", 18, 33, {119, 11, 32}},
  };
  return t;
}

std::vector<ClassInfo> subset(const std::vector<int>& train_ids) {
  std::vector<ClassInfo> out;
  for (int t : train_ids) out.push_back(cityscapes_classes()[t]);
  return out;
}

const std::vector<int> kSynthia16TrainIds = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18};
const std::vector<int> kNthu13TrainIds = {0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18};

// SYNTHIA-RAND-CITYSCAPES id -> Cityscapes trainId (255: void, parking-slot, road-work,
// lanemarking). CBST's MXNet table maps lanemarking to ignore; its PyTorch copy to road.
constexpr int kSynthiaToTrain19[23] = {255, 10, 2, 0, 1, 4, 8, 5, 13, 7, 11, 18,
                                       17, 255, 255, 6, 9, 12, 14, 15, 16, 3, 255};

// Stored value -> Cityscapes trainId: -1 unknown, 255 ignore, else 0..18.
int to_train19(LabelEncoding e, uint32_t raw) {
  if (raw == 255) return 255;  // the universal ignore value, in every encoding
  switch (e) {
    case LabelEncoding::cityscapes_ids: {
      if (raw > 33) return -1;
      for (const ClassInfo& c : cityscapes_classes())
        if (uint32_t(c.label_id) == raw) return c.train_id19;
      return 255;
    }
    case LabelEncoding::train_ids19: return raw < 19 ? int(raw) : -1;
    case LabelEncoding::train_ids16:
      return raw < 16 ? kSynthia16TrainIds[raw] : -1;
    case LabelEncoding::synthia_ids: return raw < 23 ? kSynthiaToTrain19[raw] : -1;
  }
  return -1;
}

int index_of(const std::vector<int>& v, int x) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == x) return int(i);
  return 255;
}

int train19_to_space(ClassSpace s, LabelRole role, int t) {
  if (t == 255) return 255;
  switch (s) {
    case ClassSpace::cityscapes19: return t;
    case ClassSpace::synthia16: return index_of(kSynthia16TrainIds, t);
    case ClassSpace::nthu13:
      if (role == LabelRole::prediction) {
        if (t == 3 || t == 4 || t == 5) t = 2;  // wall, fence, pole -> building
        if (t == 14) t = 13;                     // truck -> car
        if (t == 9) t = 8;                       // terrain -> vegetation
      }
      return index_of(kNthu13TrainIds, t);
  }
  return 255;
}

std::mutex g_warn_mutex;
WarningHandler& warning_handler() {
  static WarningHandler h;
  return h;
}

}  // namespace

const char* encoding_name(LabelEncoding e) {
  switch (e) {
    case LabelEncoding::cityscapes_ids: return "labelids";
    case LabelEncoding::train_ids19: return "trainids";
    case LabelEncoding::train_ids16: return "trainids16";
    case LabelEncoding::synthia_ids: return "synthia";
  }
  return "?";
}

LabelEncoding encoding_from_name(const std::string& name) {
  if (name == "labelids") return LabelEncoding::cityscapes_ids;
  if (name == "trainids" || name == "trainids19") return LabelEncoding::train_ids19;
  if (name == "trainids16") return LabelEncoding::train_ids16;
  if (name == "synthia") return LabelEncoding::synthia_ids;
  CBST_THROW("unknown label encoding '", name,
             "'; use labelids, trainids (19 Cityscapes trainIds), trainids16 or synthia");
}

const char* class_space_name(ClassSpace s) {
  switch (s) {
    case ClassSpace::cityscapes19: return "cityscapes19";
    case ClassSpace::synthia16: return "synthia16";
    case ClassSpace::nthu13: return "nthu13";
  }
  return "?";
}

const std::vector<ClassInfo>& class_table(ClassSpace space) {
  static const std::vector<ClassInfo> s16 = subset(kSynthia16TrainIds);
  static const std::vector<ClassInfo> n13 = subset(kNthu13TrainIds);
  switch (space) {
    case ClassSpace::cityscapes19: return cityscapes_classes();
    case ClassSpace::synthia16: return s16;
    case ClassSpace::nthu13: return n13;
  }
  return cityscapes_classes();
}

ClassSpace class_space_for(int n) {
  if (n == 19) return ClassSpace::cityscapes19;
  if (n == 16) return ClassSpace::synthia16;
  if (n == 13) return ClassSpace::nthu13;
  CBST_THROW("no class space with ", n, " classes; models here have 19, 16 or 13 classes");
}

LabelMap::LabelMap(LabelEncoding from, ClassSpace to, LabelRole role) : from_(from), to_(to) {
  for (uint32_t v = 0; v < 256; ++v) {
    const int t = to_train19(from, v);
    known_[v] = t >= 0;
    lut_[v] = t < 0 ? kIgnoreLabel : uint8_t(train19_to_space(to, role, t));
  }
}

Labels LabelMap::apply(const RawLabels& raw, Stats* stats) const {
  Labels out{raw.width, raw.height, {}};
  out.ids.resize(raw.values.size());
  int64_t unknown = 0;
  uint32_t first = 0;
  for (size_t i = 0; i < raw.values.size(); ++i) {
    const uint32_t v = raw.values[i];
    if (v < 256 && known_[v]) {
      out.ids[i] = lut_[v];
    } else {
      if (unknown++ == 0) first = v;
      out.ids[i] = kIgnoreLabel;
    }
  }
  if (stats) *stats = Stats{unknown, first};
  return out;
}

Labels LabelMap::apply_and_warn(const RawLabels& raw, const std::string& path) const {
  Stats st;
  Labels out = apply(raw, &st);
  if (st.unknown > 0)
    warn(path + ": " + std::to_string(st.unknown) + " pixel(s) hold label values that " +
         encoding_name(from_) + " does not define (e.g. " + std::to_string(st.first_unknown) +
         "); treated as ignore (255). Is the dataset kind right?");
  return out;
}

Protocol protocol_from_name(const std::string& name) {
  auto all = [](int n) {
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i) v[i] = i;
    return v;
  };
  if (name == "19") return {"19", ClassSpace::cityscapes19, all(19)};
  if (name == "16") return {"16", ClassSpace::synthia16, all(16)};
  if (name == "13") return {"13", ClassSpace::synthia16, {0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
  if (name == "nthu") return {"nthu", ClassSpace::nthu13, all(13)};
  CBST_THROW("unknown protocol '", name, "'; use 19, 16, 13 or nthu");
}

Image colorize(const Labels& labels, ClassSpace space) {
  const auto& table = class_table(space);
  Image out = Image::blank(labels.width, labels.height, 3, 0);
  for (size_t i = 0; i < labels.ids.size(); ++i) {
    const uint8_t id = labels.ids[i];
    if (id < table.size())
      for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = table[id].color[c];
  }
  return out;
}

void set_warning_handler(WarningHandler handler) {
  std::lock_guard<std::mutex> lock(g_warn_mutex);
  warning_handler() = std::move(handler);
}

void warn(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_warn_mutex);
  if (warning_handler())
    warning_handler()(message);
  else
    std::fprintf(stderr, "cbst: warning: %s\n", message.c_str());
}

}  // namespace cbst::data
