// Dataset: sample bookkeeping, decoding, spec parsing and list files.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset_util.h"
#include "engine/check.h"
#include "engine/format.h"

namespace cbst::data {

namespace fs = std::filesystem;

Dataset::Dataset(std::string kind, std::string root, std::string split, LabelEncoding encoding,
                 std::vector<Sample> samples)
    : kind_(std::move(kind)), root_(std::move(root)), split_(std::move(split)),
      encoding_(encoding), samples_(std::move(samples)) {}

const Sample& Dataset::sample(size_t i) const {
  CBST_CHECK(i < samples_.size(), "sample index ", i, " out of range for ", describe());
  return samples_[i];
}

bool Dataset::all_labelled() const {
  return std::all_of(samples_.begin(), samples_.end(), [](const Sample& s) { return !s.label.empty(); });
}

std::string Dataset::describe() const {
  size_t labelled = 0;
  for (const Sample& s : samples_) labelled += !s.label.empty();
  std::ostringstream os;
  os << kind_;
  if (!split_.empty()) os << " (" << split_ << ")";
  os << " at " << root_ << ": " << count_of(int64_t(samples_.size()), "image") << ", " << labelled << " labelled ("
     << encoding_name(encoding_) << ")";
  return os.str();
}

Image Dataset::read_image(size_t i) const { return read_image_rgb(sample(i).image); }

RawLabels Dataset::read_raw_labels(size_t i) const {
  const Sample& s = sample(i);
  if (s.label.empty())
    CBST_THROW(s.image, ": this ", kind_, " sample has no ground truth (split '", split_,
               "'); use a labelled split");
  return read_label_values(s.label);
}

LoadedSample Dataset::load(size_t i, const LabelMap& map) const {
  const Sample& s = sample(i);
  LoadedSample out;
  out.image = read_image_rgb(s.image);
  if (s.label.empty()) return out;
  const RawLabels raw = read_label_values(s.label);
  if (raw.width != out.image.width || raw.height != out.image.height)
    CBST_THROW("image and label sizes differ: ", s.image, " is ", out.image.width, "x",
               out.image.height, " but ", s.label, " is ", raw.width, "x", raw.height,
               "; resize the labels (nearest neighbour) or the images to match");
  out.labels = map.apply_and_warn(raw, s.label);
  return out;
}

DatasetSpec parse_dataset_spec(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    CBST_THROW("dataset '", spec, "' is not KIND=PATH; e.g. gta5=/data/GTA5, cityscapes=/data/cityscapes, "
               "synthia=/data/RAND_CITYSCAPES, nthu:rome=/data/NTHU_Datasets, bdd=/data/bdd100k/seg, "
               "list=images.txt,labels.txt, images=/data/photos");
  DatasetSpec out;
  std::string head = spec.substr(0, eq);
  out.path = spec.substr(eq + 1);
  const size_t colon = head.find(':');
  if (colon != std::string::npos) {
    out.qualifier = head.substr(colon + 1);
    head = head.substr(0, colon);
  }
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
  if (head == "gta" || head == "gtav") head = "gta5";
  out.kind = head;
  static const std::vector<std::string> kinds = {"gta5", "synthia", "cityscapes", "nthu", "bdd", "list", "images"};
  if (std::find(kinds.begin(), kinds.end(), out.kind) == kinds.end())
    CBST_THROW("unknown dataset kind '", out.kind, "' in '", spec,
               "'; use gta5, synthia, cityscapes, nthu:CITY, bdd, list or images");
  if (out.kind == "nthu" && out.qualifier.empty())
    CBST_THROW("dataset '", spec, "': NTHU needs a city, e.g. nthu:rome=PATH (rome, rio, tokyo, taipei)");
  if (out.kind == "list") {
    const size_t comma = out.path.find(',');
    if (comma != std::string::npos) {
      out.label_list = out.path.substr(comma + 1);
      out.path = out.path.substr(0, comma);
    }
  }
  return out;
}

Dataset open_dataset(const DatasetSpec& spec, const DatasetOptions& options) {
  if (spec.kind == "gta5") return open_gta5(spec.path, options);
  if (spec.kind == "synthia") return open_synthia(spec.path, options);
  if (spec.kind == "cityscapes") return open_cityscapes(spec.path, options);
  if (spec.kind == "nthu") return open_nthu(spec.path, spec.qualifier, options);
  if (spec.kind == "bdd") return open_bdd(spec.path, options);
  if (spec.kind == "list") {
    const LabelEncoding enc =
        spec.qualifier.empty() ? LabelEncoding::cityscapes_ids : encoding_from_name(spec.qualifier);
    return open_list(spec.path, spec.label_list, enc);
  }
  if (spec.kind == "images") return open_images(spec.path);
  CBST_THROW("unknown dataset kind '", spec.kind, "'; use gta5, synthia, cityscapes, nthu:CITY, bdd, list or images");
}

Dataset open_dataset(const std::string& spec, const DatasetOptions& options) {
  return open_dataset(parse_dataset_spec(spec), options);
}

// ---- helpers shared by the layouts (dataset_util.h)

std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& suffixes) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    for (const std::string& suf : suffixes)
      if (ends_with(name, suf)) {
        out.push_back(it->path().string());
        break;
      }
  }
  if (ec) CBST_THROW(dir, ": cannot list folder: ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_subdirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->is_directory(ec)) out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return "'" + dir + "' does not exist";
  if (!fs::is_directory(dir, ec)) return "'" + dir + "' is a file, not a folder";
  std::vector<std::string> names;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    names.push_back(it->path().filename().string() + (it->is_directory(ec) ? "/" : ""));
  std::sort(names.begin(), names.end());
  if (names.empty()) return "'" + dir + "' is empty";
  std::string s = "'" + dir + "' holds ";
  const size_t shown = std::min<size_t>(names.size(), 12);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += ", ... (" + std::to_string(names.size()) + " entries)";
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}
bool is_file(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string join(const std::string& a, const std::string& b) {
  if (!b.empty() && b[0] == '/') return b;
  return (fs::path(a) / b).string();
}

static std::vector<ListEntry> read_list_entries(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) CBST_THROW(path, ": is a folder, expected a list file of image paths");
  std::ifstream in(path);
  if (!in) CBST_THROW(path, ": cannot open list file; check the path");
  // Without this std::getline stops quietly, as at the end of the file, on a read error or a
  // line that does not fit in memory; with it, it rethrows std::bad_alloc as it is.
  in.exceptions(std::ios::badbit);
  std::vector<ListEntry> out;
  std::string line;
  int number = 0;
  try {
    while (std::getline(in, line)) {
      ++number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::istringstream fields(line);
      ListEntry e;
      if (!(fields >> e.image) || e.image[0] == '#') continue;
      fields >> e.label;
      std::string extra;
      if (fields >> extra)
        CBST_THROW(path, ":", number, ": expected 'image [label]', found a third column '", extra,
                   "'; paths with spaces are not supported in list files");
      out.push_back(e);
    }
  } catch (const std::ios_base::failure&) {
    CBST_THROW(path, ": read error after line ", number, "; is the file system healthy?");
  }
  if (out.empty()) CBST_THROW(path, ": list file has no entries");
  return out;
}

std::vector<ListEntry> read_list_file(const std::string& path) {
  return naming_out_of_memory(path, "reading the list file", "free memory, or check that it is a list of paths",
                              [&] { return read_list_entries(path); });
}

}  // namespace cbst::data
