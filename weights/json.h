// A small JSON reader and writer for safetensors headers (RFC 8259).
//
// The reader keeps object members in file order, reports duplicate keys (safetensors
// disallows them), keeps the text of numbers so that 64-bit offsets are read exactly, caps
// nesting depth (a hostile header cannot overflow the stack) and rejects invalid UTF-8.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cbst::weights {

struct JsonMember;

struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  std::string text;  // string value, or the literal text of a number
  std::vector<JsonValue> array;
  // A struct rather than std::pair: pair<string, JsonValue> inside JsonValue needs the
  // complete type under clang with libstdc++.
  std::vector<JsonMember> object;

  bool is_object() const { return kind == Kind::object; }
  bool is_array() const { return kind == Kind::array; }
  bool is_string() const { return kind == Kind::string; }
  bool is_number() const { return kind == Kind::number; }
  // Member lookup; nullptr when absent or not an object.
  const JsonValue* find(std::string_view key) const;
  // The number as an unsigned 64-bit integer; false when it is not one (sign, fraction,
  // exponent or overflow).
  bool as_u64(uint64_t& out) const;
};

struct JsonMember {
  std::string key;
  JsonValue value;
};

const char* json_kind_name(JsonValue::Kind k);

// Parses `text` completely (surrounding whitespace allowed). Throws cbst::Error with the
// byte position of the first problem.
JsonValue parse_json(std::string_view text);

// Appends `s` as a JSON string literal (quotes and escapes).
void append_json_string(std::string& out, std::string_view s);

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace cbst::weights
