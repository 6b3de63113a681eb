// JSON from files we did not write (safetensors headers), parsed by nlohmann/json with the
// bounds a hostile header needs: duplicate member names are refused (safetensors disallows
// them; a plain parse would keep the last one silently), nesting is capped at 64 levels and
// the document at 2^21 values, so memory and time stay proportional to the text. Strings
// must be valid UTF-8. Non-negative integers are exact up to 2^64 - 1.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace cbst::weights {

// Parses `text` completely (surrounding whitespace allowed). Objects come back sorted by
// member name, not in file order: an order-keeping object finds each member by a linear
// search, quadratic in a hostile header's millions of members. Throws cbst::Error saying
// what is wrong, with the byte position of a syntax error.
nlohmann::json parse_json(std::string_view text);

}  // namespace cbst::weights
