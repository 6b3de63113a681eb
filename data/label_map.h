// Label encodings, class spaces, evaluation protocols, label maps and palettes.
//
// A label file stores values in some *encoding* (Cityscapes labelIds for GTA5, Cityscapes,
// NTHU; SYNTHIA class ids; trainIds for BDD and for predictions). A model and an evaluation
// work in a *class space* (the 19 Cityscapes trainIds, CBST's contiguous 16-class SYNTHIA
// space, the 13 NTHU classes). A LabelMap turns stored values into class ids of a space,
// with 255 = ignore; values the encoding does not define also become 255 and are counted,
// so that a wrong dataset kind shows up as a warning instead of silent garbage.
//
// Every map is the composition  stored value -> Cityscapes trainId (19) -> class space,
// which reproduces the tables of cityscapesScripts (labels.py), CBST's labels_synthia.py
// and labels_cityscapes_synthia.py, and the NTHU 13-class map.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/image.h"

namespace cbst::data {

enum class LabelEncoding {
  cityscapes_ids,  // Cityscapes labelIds 0..33 (GTA5, Cityscapes gtFine, NTHU *_eval.png)
  train_ids19,     // Cityscapes trainIds 0..18, 255 ignore (BDD, labelTrainIds, predictions)
  train_ids16,     // CBST's contiguous 16-class space, 255 ignore
  synthia_ids,     // SYNTHIA-RAND-CITYSCAPES class ids 0..22 (void 0 ... lanemarking 22)
};
const char* encoding_name(LabelEncoding e);  // "labelids", "trainids", "trainids16", "synthia"
LabelEncoding encoding_from_name(const std::string& name);

enum class ClassSpace {
  cityscapes19,  // road, sidewalk, ..., bicycle (trainId order)
  synthia16,     // the 19 less terrain, truck, train; contiguous ids 0..15
  nthu13,        // road, sidewalk, building, light, sign, vegetation, sky, person, rider, car,
                 // bus, motorcycle, bicycle
};
const char* class_space_name(ClassSpace s);  // "cityscapes19", "synthia16", "nthu13"

struct ClassInfo {
  std::string name;
  int train_id19 = 0;             // the Cityscapes trainId of this class
  int label_id = 0;               // the Cityscapes labelId
  std::array<uint8_t, 3> color;   // Cityscapes palette
};
const std::vector<ClassInfo>& class_table(ClassSpace space);
inline int num_classes(ClassSpace space) { return int(class_table(space).size()); }
ClassSpace class_space_for(int num_classes);  // 19, 16, 13 (NTHU)

// The role matters for NTHU only: a 19-class prediction is *merged* into the 13 classes
// (pole/fence/wall -> building, truck -> car, terrain -> vegetation; train -> ignore),
// whereas ground truth keeps only the 13 classes and ignores everything else.
enum class LabelRole { ground_truth, prediction };

class LabelMap {
 public:
  LabelMap(LabelEncoding from, ClassSpace to, LabelRole role = LabelRole::ground_truth);

  LabelEncoding from() const { return from_; }
  ClassSpace to() const { return to_; }
  // 255 for ignore and for unknown values.
  uint8_t operator()(uint32_t raw) const { return raw < 256 ? lut_[raw] : kIgnoreLabel; }
  bool known(uint32_t raw) const { return raw < 256 && known_[raw]; }

  struct Stats {
    int64_t unknown = 0;          // pixels with values the encoding does not define
    uint32_t first_unknown = 0;   // one such value, for the message
  };
  Labels apply(const RawLabels& raw, Stats* stats = nullptr) const;
  // apply(), then warn once for this file when some values were unknown.
  Labels apply_and_warn(const RawLabels& raw, const std::string& path) const;

 private:
  LabelEncoding from_;
  ClassSpace to_;
  std::array<uint8_t, 256> lut_{};
  std::array<bool, 256> known_{};
};

// Evaluation protocols. The confusion matrix lives in `space`; mIoU averages `classes`
// (indices into the space). "13" is CBST's mIoU*: the 16-class matrix, averaged without
// wall, fence and pole (the author's definition, yzou2/CBST#7).
struct Protocol {
  std::string name;          // "19", "16", "13", "nthu"
  ClassSpace space;
  std::vector<int> classes;  // reported classes, in the paper's column order
};
Protocol protocol_from_name(const std::string& name);  // throws listing the valid names

// Colourise class ids with the Cityscapes palette (ignore = black).
Image colorize(const Labels& labels, ClassSpace space);

// Warnings from readers (unknown label values, skipped unpaired files). Default: stderr.
using WarningHandler = std::function<void(const std::string&)>;
void set_warning_handler(WarningHandler handler);  // empty handler restores stderr
void warn(const std::string& message);

}  // namespace cbst::data
