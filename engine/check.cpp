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

void rethrow_with_context(const Error& e, const std::string& prefix, const std::string& suffix) {
  const std::string& user = e.user_message();
  throw Error(prefix + e.what() + suffix, user.empty() ? std::string() : prefix + user + suffix);
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
  throw Error(msg.str(), details);
}

}  // namespace detail
}  // namespace cbst
