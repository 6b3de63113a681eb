// Errors and precondition checks.
//
// Library code throws cbst::Error; `main` prints what() and exits non-zero. Every message
// says what failed, where (file:line), the values involved, and, when the user's next step
// is known, a "hint:" line. CUDA/cuBLAS/cuDNN checks live in engine/cuda/cuda_check.h
// (they need the CUDA headers) and build their messages with the same helper.
#pragma once

#include <cstdint>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cbst {

// what() is for developers and tests: a failed check adds its expression and source location.
// user_message() is what the command line prints: the message alone, empty for a check that
// carried none (an internal error, which main reports without the expression).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message), user_(message) {}
  Error(const std::string& message, std::string user_message)
      : std::runtime_error(message), user_(std::move(user_message)) {}
  const std::string& user_message() const { return user_; }

 private:
  std::string user_;
};

namespace detail {

inline void stream_all(std::ostringstream&) {}
template <class T, class... Rest>
void stream_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  stream_all(os, rest...);
}

// The one generic failure path: expression text, details, file:line.
[[noreturn]] void fail(const char* kind, const char* expr, const std::string& details,
                       const char* file, int line);

}  // namespace detail

// "[2, 3, 4]": used in every shape message.
std::string shape_str(const std::vector<int64_t>& shape);

// Memory running out is a user error like any other: one line naming the file (or the
// thing) and the stage, ending with what to do. Readers bound what they allocate by the
// input's size and documented caps, so this means a large valid input on a small machine.
//   "<subject>: out of memory while <stage>; <what_to_do>"
// Throws e again with context around both of its messages (what() and user_message()).
[[noreturn]] void rethrow_with_context(const Error& e, const std::string& prefix, const std::string& suffix = "");

[[noreturn]] void throw_out_of_memory(const std::string& subject, const std::string& stage,
                                      const std::string& what_to_do);

// Runs f(); a std::bad_alloc from it becomes the error above. Other exceptions pass through.
template <class F>
auto naming_out_of_memory(const std::string& subject, const std::string& stage, const std::string& what_to_do,
                          F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(subject, stage, what_to_do);
  }
}

}  // namespace cbst

// CBST_CHECK(cond, parts...): throws cbst::Error naming the condition and the streamed parts.
#define CBST_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) [[unlikely]] {                                                      \
      std::ostringstream cbst_os_;                                                   \
      ::cbst::detail::stream_all(cbst_os_, ##__VA_ARGS__);                           \
      ::cbst::detail::fail("check", #cond, cbst_os_.str(), __FILE__, __LINE__);      \
    }                                                                                \
  } while (0)

// CBST_THROW(parts...): unconditional failure with a message (bad user input, unsupported case).
#define CBST_THROW(...)                                                              \
  do {                                                                               \
    std::ostringstream cbst_os_;                                                     \
    ::cbst::detail::stream_all(cbst_os_, ##__VA_ARGS__);                             \
    throw ::cbst::Error(cbst_os_.str());                                             \
  } while (0)
