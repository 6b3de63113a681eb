// A minimal protobuf wire-format reader (enough for Caffe's NetParameter).
//
// Each field is key = varint(number << 3 | wire type), then a varint (0), 8 bytes (1), a
// varint length and that many bytes (2) or 4 bytes (5). Deprecated groups (3, 4) and
// malformed keys are errors; unknown fields are returned to the caller, who skips them.
// Every length is checked against the enclosing message before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cbst::weights {

struct ProtoField {
  uint32_t number = 0;
  uint8_t wire = 0;
  uint64_t value = 0;                 // wire 0: the varint; wire 1/5: the raw little-endian bits
  std::span<const uint8_t> bytes;     // wire 2: the payload
};

class ProtoReader {
 public:
  explicit ProtoReader(std::span<const uint8_t> message) : data_(message) {}
  // Reads the next field; false at the end of the message.
  bool next(ProtoField& field);
  // A varint from the payload of a packed field.
  static uint64_t varint(std::span<const uint8_t> data, size_t& pos);
  size_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace cbst::weights
