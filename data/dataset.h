// Dataset readers: each finds the image/label pairs of a published layout (or reads a list
// file) and decodes one sample on request. Named on the command line as KIND=PATH:
//
//   gta5=ROOT        ROOT/images/NNNNN.png, ROOT/labels/NNNNN.png (palette PNGs, labelIds)
//   synthia=ROOT     ROOT/RGB/NNNNNNN.png, ROOT/GT/LABELS/NNNNNNN.png (16-bit, id in channel 0)
//   cityscapes=ROOT  ROOT/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png,
//                    ROOT/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png
//   nthu:CITY=ROOT   ROOT/<City>/Images/{Train,Test}/*.{jpg,png}, ROOT/<City>/Labels/Test/*_eval.png
//                    (ROOT may also be the city folder itself)
//   bdd=ROOT         ROOT/images/<split>/*.jpg + ROOT/labels/<split>/<stem>_train_id.png (also
//                    under ROOT/seg/), or ROOT/images/10k/<split> + ROOT/labels/sem_seg/masks/<split>
//   list[:ENC]=IMAGES[,LABELS]  an image list and an optional label list (ENC: labelids
//                    (default), trainids, trainids16, synthia)
//
// An optional list file (DatasetOptions::list_file) restricts and orders a layout's samples:
// one sample per line, "image [label]" separated by whitespace (CBST's .lst format), paths
// relative to the dataset root; without a label column the layout's rule derives it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/label_map.h"

namespace cbst::data {

struct Sample {
  std::string image;  // path
  std::string label;  // path; empty when the sample has no ground truth
  std::string stem;   // "frankfurt_000000_000294", "00001": matches predictions to samples
};

struct DatasetSpec {
  std::string kind;       // gta5, synthia, cityscapes, nthu, bdd, list
  std::string qualifier;  // nthu: the city; list: the label encoding
  std::string path;
  std::string label_list;  // list only
};
// "KIND=PATH", "KIND:QUALIFIER=PATH", "list=IMAGES,LABELS"; throws naming the valid kinds.
DatasetSpec parse_dataset_spec(const std::string& spec);

struct DatasetOptions {
  std::string split = "train";  // cityscapes/bdd: train, val, test; nthu: train, test
  std::string list_file = {};   // optional, see above
};

// An image with its labels mapped to a class space (empty labels when unlabelled).
struct LoadedSample {
  Image image;
  Labels labels;
};

class Dataset {
 public:
  Dataset(std::string kind, std::string root, std::string split, LabelEncoding encoding,
          std::vector<Sample> samples);

  const std::string& kind() const { return kind_; }
  const std::string& root() const { return root_; }
  const std::string& split() const { return split_; }
  LabelEncoding label_encoding() const { return encoding_; }
  size_t size() const { return samples_.size(); }
  const Sample& sample(size_t i) const;
  const std::vector<Sample>& samples() const { return samples_; }
  bool all_labelled() const;
  std::string describe() const;  // "cityscapes (val) at ROOT: 500 images, labelled"

  Image read_image(size_t i) const;
  RawLabels read_raw_labels(size_t i) const;  // throws when the sample is unlabelled
  // Image and labels mapped through `map`; throws naming both files when their sizes differ.
  LoadedSample load(size_t i, const LabelMap& map) const;
  // The map from this dataset's stored labels to `space`.
  LabelMap label_map(ClassSpace space) const { return LabelMap(encoding_, space); }

 private:
  std::string kind_, root_, split_;
  LabelEncoding encoding_;
  std::vector<Sample> samples_;
};

Dataset open_dataset(const DatasetSpec& spec, const DatasetOptions& options = {});
Dataset open_dataset(const std::string& spec, const DatasetOptions& options = {});

Dataset open_gta5(const std::string& root, const DatasetOptions& options = {});
Dataset open_synthia(const std::string& root, const DatasetOptions& options = {});
Dataset open_cityscapes(const std::string& root, const DatasetOptions& options = {});
Dataset open_nthu(const std::string& root, const std::string& city, const DatasetOptions& options = {});
Dataset open_bdd(const std::string& root, const DatasetOptions& options = {});
Dataset open_list(const std::string& image_list, const std::string& label_list,
                  LabelEncoding encoding = LabelEncoding::cityscapes_ids);
// Every image (.png, .jpg, .jpeg) under `root`, in subfolders too, sorted by path, without
// ground truth; stems are file names without extension and must be unique (predictions are
// written by stem).
Dataset open_images(const std::string& root);

}  // namespace cbst::data
