#include "engine/json.h"

#include <nlohmann/json.hpp>

namespace cbst {

std::string json_text(const Json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace cbst
