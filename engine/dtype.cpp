#include "engine/dtype.h"

#include "engine/check.h"

namespace cbst {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::bf16: return 2;
  }
  CBST_THROW("unknown dtype ", int(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::bf16: return "bf16";
  }
  return "?";
}

const char* dtype_hint(DType t) {
  return t == DType::bf16 ? " (bf16 is a storage type: only conv2d, conv_transpose2d, matmul and casts take "
                            "it; convert with .to(DType::f32))"
                          : "";
}

DType dtype_from_name(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "f64" || name == "float64") return DType::f64;
  if (name == "u8" || name == "uint8") return DType::u8;
  if (name == "i32" || name == "int32") return DType::i32;
  if (name == "i64" || name == "int64") return DType::i64;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  CBST_THROW("unknown dtype '", name, "'; expected one of f32, f64, u8, i32, i64, bf16");
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    CBST_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
               "bad device '", s, "'; expected cpu, cuda or cuda:N");
    return cuda(std::stoi(idx));
  }
  CBST_THROW("unknown device '", s, "'; expected cpu, cuda or cuda:N");
}

std::string Device::str() const {
  return is_cpu() ? "cpu" : "cuda:" + std::to_string(index);
}

}  // namespace cbst
