#include "weights/json.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "engine/check.h"
#include "weights/byte_source.h"

namespace cbst::weights {

namespace {

constexpr size_t kMaxDepth = 64;
// A cap on the number of values bounds the parsed document's memory whatever the text
// ("0," is two bytes, its value tens); a safetensors header needs about 7 values per tensor.
constexpr size_t kMaxValues = size_t(1) << 21;

// A first pass over the text that builds nothing: it enforces the bounds and refuses
// duplicate names, so that the parse that builds the document only ever sees text within
// them. (nlohmann's parse callbacks could do this in one pass, but removing their discarded
// values rescans each parent object, which is quadratic in the number of members.)
// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 9:
// <reason>; last read: '<token>'": the reason alone, and at most 160 characters of it (the
// token of an unterminated string runs to the end of the text).
std::string reason_of(std::string what) {
  if (what.starts_with("[json.exception.") && what.find("] ") != std::string::npos) what.erase(0, what.find("] ") + 2);
  const size_t column = what.find(", column ");
  if (what.starts_with("parse error") && column != std::string::npos && what.find(": ", column) != std::string::npos)
    what.erase(0, what.find(": ", column) + 2);
  if (what.size() > 160) what = what.substr(0, 160) + "...";
  return what;
}

class BoundsCheck final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    value();
    open_.emplace_back();
    return true;
  }
  bool key(string_t& name) override {
    if (!open_.back().insert(name).second)
      CBST_THROW("invalid JSON: duplicate member name '", printable(name), "'");
    return true;
  }
  bool end_object() override {
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    value();
    open_.emplace_back();
    return true;
  }
  bool end_array() override {
    open_.pop_back();
    return true;
  }
  bool parse_error(std::size_t byte, const std::string&, const nlohmann::json::exception& e) override {
    CBST_THROW("invalid JSON at byte ", byte, ": ", reason_of(e.what()));
  }

 private:
  bool value() {
    if (open_.size() > kMaxDepth) CBST_THROW("invalid JSON: nesting deeper than ", kMaxDepth, " levels");
    if (++values_ > kMaxValues) CBST_THROW("invalid JSON: more than ", kMaxValues, " values");
    return true;
  }

  // The member names seen so far in each open object (empty for arrays).
  std::vector<std::unordered_set<std::string>> open_;
  size_t values_ = 0;
};

}  // namespace

nlohmann::json parse_json(std::string_view text) {
  BoundsCheck check;
  nlohmann::json::sax_parse(text.begin(), text.end(), &check);
  return nlohmann::json::parse(text.begin(), text.end());
}

}  // namespace cbst::weights
