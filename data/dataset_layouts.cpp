// The published layouts of GTA5, SYNTHIA-RAND-CITYSCAPES, Cityscapes, NTHU cross-city, BDD
// and plain list files. Each opener explains, on failure, what it expected and what it found.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <map>

#include "data/dataset.h"
#include "data/dataset_util.h"
#include "engine/check.h"

namespace cbst::data {

namespace {

const std::vector<std::string> kImageSuffixes = {".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"};

[[noreturn]] void layout_error(const std::string& kind, const std::string& root,
                               const std::string& expected, const std::string& looked_in) {
  CBST_THROW(kind, " root '", root, "' does not have the expected layout: expected ", expected,
             "; found: ", describe_folder(looked_in),
             (looked_in != root ? "; and " + describe_folder(root) : std::string()),
             ". Check the path and the dataset kind");
}

using DeriveLabel = std::function<std::string(const std::string& image_rel)>;
using DeriveStem = std::function<std::string(const std::string& image_path)>;

// Samples from a list file: paths relative to `root`; missing labels derived by the layout.
std::vector<Sample> samples_from_list(const std::string& list_file, const std::string& root,
                                      const DeriveLabel& derive_label, const DeriveStem& stem) {
  std::vector<Sample> out;
  for (const ListEntry& e : read_list_file(list_file)) {
    Sample s;
    s.image = join(root, e.image);
    s.label = e.label.empty() ? (derive_label ? derive_label(e.image) : std::string()) : e.label;
    if (!s.label.empty()) s.label = join(root, s.label);
    s.stem = stem(s.image);
    if (!is_file(s.image))
      CBST_THROW(list_file, ": image '", s.image, "' listed but missing; is the list for this root?");
    out.push_back(std::move(s));
  }
  return out;
}

std::string replace_suffix(const std::string& s, const std::string& from, const std::string& to) {
  return ends_with(s, from) ? s.substr(0, s.size() - from.size()) + to : s;
}

// GTA5 and SYNTHIA: one image folder, one label folder, pairs by file name. Images without a
// label are skipped with one warning (the common GTA5 download lacks 25 labels).
Dataset paired_folders(const std::string& kind, const std::string& root, const DatasetOptions& options,
                       const std::string& image_rel, const std::vector<std::string>& label_rels,
                       LabelEncoding encoding, const std::string& expected) {
  std::string label_rel = label_rels[0];
  for (const std::string& l : label_rels)
    if (is_dir(join(root, l))) label_rel = l;
  const auto derive = [&](const std::string& image) {
    std::string rel = image;
    if (rel.rfind(image_rel + "/", 0) == 0) rel = label_rel + rel.substr(image_rel.size());
    return rel;
  };
  if (!options.list_file.empty())
    return Dataset(kind, root, options.split, encoding,
                   samples_from_list(options.list_file, root, derive, file_stem));
  const std::string image_dir = join(root, image_rel), label_dir = join(root, label_rel);
  if (!is_dir(image_dir) || !is_dir(label_dir)) layout_error(kind, root, expected, root);
  std::vector<Sample> samples;
  std::vector<std::string> unpaired;
  for (const std::string& image : list_files(image_dir, kImageSuffixes)) {
    const std::string stem = file_stem(image);
    const std::string label = join(label_dir, stem + ".png");
    if (!is_file(label)) {
      unpaired.push_back(stem);
      continue;
    }
    samples.push_back({image, label, stem});
  }
  if (samples.empty()) layout_error(kind, root, expected, image_dir);
  if (!unpaired.empty())
    warn(kind + " at " + root + ": skipped " + std::to_string(unpaired.size()) +
         " image(s) without a label in " + label_dir + " (first: " + unpaired[0] + ")");
  return Dataset(kind, root, options.split, encoding, std::move(samples));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A child folder of `dir` whose name matches `name` ignoring case ("" when none).
std::string find_dir_ci(const std::string& dir, const std::string& name) {
  for (const std::string& d : list_subdirs(dir))
    if (lower(d) == lower(name)) return join(dir, d);
  return "";
}

}  // namespace

Dataset open_gta5(const std::string& root, const DatasetOptions& options) {
  return paired_folders("gta5", root, options, "images", {"labels"}, LabelEncoding::cityscapes_ids,
                        "images/NNNNN.png and labels/NNNNN.png (palette PNGs holding Cityscapes labelIds)");
}

Dataset open_synthia(const std::string& root, const DatasetOptions& options) {
  return paired_folders("synthia", root, options, "RGB", {"GT/LABELS", "GT/labels"},
                        LabelEncoding::synthia_ids,
                        "RGB/NNNNNNN.png and GT/LABELS/NNNNNNN.png (SYNTHIA-RAND-CITYSCAPES, 16-bit labels "
                        "with the class id in channel 0)");
}

Dataset open_cityscapes(const std::string& root, const DatasetOptions& options) {
  const std::string split = options.split.empty() ? "train" : options.split;
  const auto stem = [](const std::string& image) {
    return replace_suffix(file_stem(image), "_leftImg8bit", "");
  };
  const auto derive = [](const std::string& image_rel) {
    std::string rel = image_rel;
    if (rel.rfind("leftImg8bit/", 0) == 0) rel = "gtFine/" + rel.substr(12);
    return replace_suffix(rel, "_leftImg8bit.png", "_gtFine_labelIds.png");
  };
  if (!options.list_file.empty())
    return Dataset("cityscapes", root, split, LabelEncoding::cityscapes_ids,
                   samples_from_list(options.list_file, root, derive, stem));
  const std::string expected = "leftImg8bit/" + split + "/<city>/<stem>_leftImg8bit.png and gtFine/" +
                               split + "/<city>/<stem>_gtFine_labelIds.png";
  const std::string image_split = join(root, "leftImg8bit/" + split);
  if (!is_dir(image_split))
    layout_error("cityscapes", root, expected, is_dir(join(root, "leftImg8bit")) ? join(root, "leftImg8bit") : root);
  // No gtFine/<split> at all means an unlabelled split (allowed for self-training targets);
  // a gtFine folder that lacks one file is an error.
  const std::string label_split = join(root, "gtFine/" + split);
  const bool labelled = is_dir(label_split);
  std::vector<Sample> samples;
  for (const std::string& city : list_subdirs(image_split)) {
    for (const std::string& image : list_files(join(image_split, city), {"_leftImg8bit.png"})) {
      Sample s{image, "", stem(image)};
      if (labelled) {
        s.label = join(label_split, city + "/" + s.stem + "_gtFine_labelIds.png");
        if (!is_file(s.label))
          CBST_THROW("cityscapes: missing ground truth for ", image, ": expected ", s.label,
                     "; is gtFine complete (gtFine_trainvaltest.zip)?");
      }
      samples.push_back(std::move(s));
    }
  }
  if (samples.empty()) layout_error("cityscapes", root, expected, image_split);
  return Dataset("cityscapes", root, split, LabelEncoding::cityscapes_ids, std::move(samples));
}

Dataset open_nthu(const std::string& root, const std::string& city, const DatasetOptions& options) {
  const std::string split = lower(options.split.empty() ? "train" : options.split);
  if (split != "train" && split != "test" && split != "val")
    CBST_THROW("nthu: unknown split '", options.split, "'; NTHU has train (unlabelled) and test");
  const bool test = split != "train";
  const std::string expected = "<City>/Images/{Train,Test}/*.jpg and <City>/Labels/Test/<name>_eval.png "
                               "(city '" + city + "')";
  std::string city_dir = is_dir(join(root, "Images")) ? root : find_dir_ci(root, city);
  if (city_dir.empty()) layout_error("nthu", root, expected, root);
  const auto derive = [test](const std::string& image_rel) -> std::string {
    if (!test) return "";
    std::string rel = image_rel;
    if (rel.rfind("Images/Test/", 0) == 0) rel = "Labels/Test/" + rel.substr(12);
    const size_t dot = rel.rfind('.');
    return (dot == std::string::npos ? rel : rel.substr(0, dot)) + "_eval.png";
  };
  if (!options.list_file.empty())
    return Dataset("nthu:" + lower(city), city_dir, split, LabelEncoding::cityscapes_ids,
                   samples_from_list(options.list_file, city_dir, derive, file_stem));
  const std::string image_dir = find_dir_ci(join(city_dir, "Images"), test ? "Test" : "Train");
  if (image_dir.empty()) layout_error("nthu", root, expected, city_dir);
  std::string label_dir;
  if (test) {
    label_dir = find_dir_ci(join(city_dir, "Labels"), "Test");
    if (label_dir.empty()) layout_error("nthu", root, expected, city_dir);
  }
  std::vector<Sample> samples;
  for (const std::string& image : list_files(image_dir, kImageSuffixes)) {
    Sample s{image, "", file_stem(image)};
    if (test) {
      s.label = join(label_dir, s.stem + "_eval.png");
      if (!is_file(s.label))
        CBST_THROW("nthu: missing ground truth for ", image, ": expected ", s.label);
    }
    samples.push_back(std::move(s));
  }
  if (samples.empty()) layout_error("nthu", root, expected, image_dir);
  return Dataset("nthu:" + lower(city), city_dir, split, LabelEncoding::cityscapes_ids, std::move(samples));
}

Dataset open_bdd(const std::string& root, const DatasetOptions& options) {
  const std::string split = options.split.empty() ? "train" : options.split;
  const std::string expected = "images/" + split + "/*.jpg with labels/" + split +
                               "/<name>_train_id.png (bdd100k/seg), or images/10k/" + split +
                               " with labels/sem_seg/masks/" + split + "/<name>.png";
  struct Variant {
    std::string images, labels, label_suffix;
  };
  const std::vector<Variant> variants = {
      {"images/" + split, "labels/" + split, "_train_id.png"},
      {"seg/images/" + split, "seg/labels/" + split, "_train_id.png"},
      {"images/10k/" + split, "labels/sem_seg/masks/" + split, ".png"},
  };
  for (const Variant& v : variants) {
    const std::string image_dir = join(root, v.images);
    if (!is_dir(image_dir)) continue;
    const std::string label_dir = join(root, v.labels);
    const bool labelled = is_dir(label_dir);
    if (!options.list_file.empty()) {
      const auto derive = [&](const std::string& rel) {
        return labelled ? v.labels + "/" + file_stem(rel) + v.label_suffix : std::string();
      };
      return Dataset("bdd", root, split, LabelEncoding::train_ids19,
                     samples_from_list(options.list_file, root, derive, file_stem));
    }
    std::vector<Sample> samples;
    for (const std::string& image : list_files(image_dir, kImageSuffixes)) {
      Sample s{image, "", file_stem(image)};
      if (labelled) {
        s.label = join(label_dir, s.stem + v.label_suffix);
        if (!is_file(s.label)) CBST_THROW("bdd: missing ground truth for ", image, ": expected ", s.label);
      }
      samples.push_back(std::move(s));
    }
    if (samples.empty()) layout_error("bdd", root, expected, image_dir);
    return Dataset("bdd", root, split, LabelEncoding::train_ids19, std::move(samples));
  }
  layout_error("bdd", root, expected, root);
}

Dataset open_list(const std::string& image_list, const std::string& label_list, LabelEncoding encoding) {
  const std::string base = [&] {
    const size_t slash = image_list.rfind('/');
    return slash == std::string::npos ? std::string(".") : image_list.substr(0, slash);
  }();
  std::vector<Sample> samples = samples_from_list(image_list, base, nullptr, file_stem);
  if (!label_list.empty()) {
    const std::vector<ListEntry> labels = read_list_file(label_list);
    if (labels.size() != samples.size())
      CBST_THROW("list: ", image_list, " has ", samples.size(), " entries but ", label_list, " has ",
                 labels.size(), "; the two lists must pair line by line");
    const size_t slash = label_list.rfind('/');
    const std::string label_base = slash == std::string::npos ? "." : label_list.substr(0, slash);
    for (size_t i = 0; i < samples.size(); ++i) samples[i].label = join(label_base, labels[i].image);
  }
  return Dataset("list", image_list, "", encoding, std::move(samples));
}

Dataset open_images(const std::string& root) {
  if (!is_dir(root)) CBST_THROW("images: '", root, "' is not a folder; images=DIR takes a folder of images");
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  std::error_code ec;
  // Symbolic links to folders are not followed, so a link loop cannot make this endless.
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    for (const std::string& suffix : kImageSuffixes)
      if (ends_with(name, suffix)) {
        paths.push_back(it->path().string());
        break;
      }
  }
  if (ec) CBST_THROW("images: cannot list '", root, "': ", ec.message());
  if (paths.empty())
    CBST_THROW("images: no .png or .jpg files under '", root, "'; found: ", describe_folder(root));
  std::sort(paths.begin(), paths.end());
  std::vector<Sample> samples;
  std::map<std::string, std::string> seen;
  for (const std::string& path : paths) {
    Sample s{.image = path, .label = {}, .stem = file_stem(path)};
    const auto [where, fresh] = seen.emplace(s.stem, path);
    if (!fresh)
      CBST_THROW("images: '", where->second, "' and '", path, "' have the same name '", s.stem,
                 "'; outputs are named after the image, so rename one or predict the folders apart");
    samples.push_back(std::move(s));
  }
  return Dataset("images", root, "", LabelEncoding::cityscapes_ids, std::move(samples));
}

}  // namespace cbst::data
