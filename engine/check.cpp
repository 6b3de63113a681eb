#include "engine/check.h"

namespace cbst {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void throw_out_of_memory(const std::string& subject, const std::string& stage, const std::string& what_to_do) {
  throw Error(subject + ": out of memory while " + stage + "; " + what_to_do);
}

namespace detail {

void fail(const char* kind, const char* expr, const std::string& details, const char* file,
          int line) {
  std::ostringstream msg;
  if (details.empty()) msg << kind << " failed: " << expr;
  else msg << details << " (" << kind << " `" << expr << "` failed)";
  msg << " [" << file << ":" << line << "]";
  throw Error(msg.str());
}

}  // namespace detail
}  // namespace cbst
