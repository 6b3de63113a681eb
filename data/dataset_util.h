// Internal helpers for the dataset layouts.
#pragma once

#include <string>
#include <vector>

namespace cbst::data {

// Regular files in `dir` whose names end with one of `suffixes`, sorted by path.
std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& suffixes);
std::vector<std::string> list_subdirs(const std::string& dir);  // names, sorted
// "'/x' holds a/, b.png, ..." for "expected ... found ..." messages.
std::string describe_folder(const std::string& dir);
bool ends_with(const std::string& s, const std::string& suffix);
std::string file_stem(const std::string& path);
bool is_dir(const std::string& p);
bool is_file(const std::string& p);
std::string join(const std::string& a, const std::string& b);  // b absolute: b

struct ListEntry {
  std::string image;
  std::string label;  // empty when the line has one column
};
std::vector<ListEntry> read_list_file(const std::string& path);

}  // namespace cbst::data
