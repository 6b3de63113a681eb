#include "weights/protobuf.h"

#include "engine/check.h"

namespace cbst::weights {

uint64_t ProtoReader::varint(std::span<const uint8_t> data, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos >= data.size()) CBST_THROW("protobuf: varint runs past the end of its message; the file is truncated or corrupt");
    const uint8_t b = data[pos++];
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  CBST_THROW("protobuf: varint longer than 10 bytes; the file is corrupt");
}

bool ProtoReader::next(ProtoField& f) {
  if (pos_ >= data_.size()) return false;
  const size_t start = pos_;
  const uint64_t key = varint(data_, pos_);
  f.number = uint32_t(key >> 3);
  f.wire = uint8_t(key & 7);
  if (f.number == 0 || (key >> 3) > 0x1FFFFFFF)
    CBST_THROW("protobuf: invalid field number at byte ", start, "; the file is corrupt or not a caffemodel");
  auto need = [&](uint64_t n) {
    if (n > data_.size() - pos_)
      CBST_THROW("protobuf: field ", f.number, " needs ", n, " bytes at offset ", pos_, " but its message has ",
                 data_.size() - pos_, " left; the file is truncated or corrupt");
  };
  switch (f.wire) {
    case 0: f.value = varint(data_, pos_); break;
    case 1:
    case 5: {
      const size_t n = f.wire == 1 ? 8 : 4;
      need(n);
      f.value = 0;
      for (size_t i = 0; i < n; ++i) f.value |= uint64_t(data_[pos_ + i]) << (8 * i);
      pos_ += n;
      break;
    }
    case 2: {
      const uint64_t n = varint(data_, pos_);
      need(n);
      f.bytes = data_.subspan(pos_, size_t(n));
      pos_ += size_t(n);
      break;
    }
    default:
      CBST_THROW("protobuf: field ", f.number, " has wire type ", int(f.wire),
                 " (groups are not used by Caffe); the file is corrupt or not a caffemodel");
  }
  return true;
}

}  // namespace cbst::weights
