// JSON through nlohmann/json, the one JSON implementation of cbst: every file we write
// (run folders, evaluation results, benchmarks, safetensors headers) is a `Json` value
// turned into text by json_text, so there is one escaper and one number format.
// Untrusted JSON (safetensors headers) is parsed with bounds by weights/json.h.
//
// This header only names the type (so that headers can declare functions taking or returning
// one without compiling the library everywhere); code that builds or reads values also
// includes <nlohmann/json.hpp>.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace cbst {

// Objects keep their members in insertion order, so files read in the order they were built.
using Json = nlohmann::ordered_json;

// `value` as text: one line when `indent` < 0, else indented by that many spaces. NaN and
// infinities are written as null (JSON has no such numbers); invalid UTF-8 in a string (file
// names are bytes) becomes U+FFFD. Doubles are written with the fewest digits that read back
// to the same value.
std::string json_text(const Json& value, int indent = -1);

}  // namespace cbst
