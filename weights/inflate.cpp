#include "weights/inflate.h"

#include <array>

#include "engine/check.h"

namespace cbst::weights {

namespace {

// Canonical Huffman decoding table: counts per code length and symbols in code order
// (the "puff" scheme: decode one bit at a time, walking code lengths).
struct Huffman {
  std::array<uint16_t, 16> count{};
  std::array<uint16_t, 320> symbol{};
};

class BitReader {
 public:
  BitReader(const uint8_t* src, size_t n) : src_(src), n_(n) {}

  uint32_t bits(int need) {
    uint64_t v = bitbuf_;
    while (bitcnt_ < need) {
      if (pos_ >= n_) CBST_THROW("deflate: compressed data ends early; the file is truncated");
      v |= uint64_t(src_[pos_++]) << bitcnt_;
      bitcnt_ += 8;
    }
    bitbuf_ = v >> need;
    bitcnt_ -= need;
    return uint32_t(v & ((uint64_t(1) << need) - 1));
  }

  void align_to_byte() {
    bitbuf_ = 0;
    bitcnt_ = 0;
  }

  uint8_t byte() {
    if (pos_ >= n_) CBST_THROW("deflate: compressed data ends early; the file is truncated");
    return src_[pos_++];
  }

  int decode(const Huffman& h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= 15; ++len) {
      code |= int(bits(1));
      const int count = h.count[size_t(len)];
      if (code - count < first) return h.symbol[size_t(index + (code - first))];
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    CBST_THROW("deflate: invalid Huffman code; the data is corrupt");
  }

 private:
  const uint8_t* src_;
  size_t n_;
  size_t pos_ = 0;
  uint64_t bitbuf_ = 0;
  int bitcnt_ = 0;
};

// Builds the table; rejects over-subscribed code sets (incomplete ones are legal only for
// single-code distance trees, which decode() handles by failing on unused codes).
void build(Huffman& h, const uint8_t* lengths, int n) {
  h.count.fill(0);
  for (int i = 0; i < n; ++i) ++h.count[lengths[i]];
  if (h.count[0] == n) return;
  int left = 1;
  for (int len = 1; len <= 15; ++len) {
    left <<= 1;
    left -= h.count[size_t(len)];
    if (left < 0) CBST_THROW("deflate: over-subscribed Huffman code; the data is corrupt");
  }
  std::array<uint16_t, 16> offs{};
  for (int len = 1; len < 15; ++len) offs[size_t(len + 1)] = uint16_t(offs[size_t(len)] + h.count[size_t(len)]);
  for (int i = 0; i < n; ++i)
    if (lengths[i]) h.symbol[offs[lengths[i]]++] = uint16_t(i);
}

constexpr uint16_t kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                   35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                    6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

class Inflater {
 public:
  Inflater(const uint8_t* src, size_t n, uint64_t expected) : in_(src, n), expected_(expected) {
    out_.reserve(size_t(expected));
  }

  std::vector<uint8_t> run() {
    bool last = false;
    while (!last) {
      last = in_.bits(1);
      const uint32_t type = in_.bits(2);
      if (type == 0) stored();
      else if (type == 1) fixed();
      else if (type == 2) dynamic();
      else CBST_THROW("deflate: invalid block type 3; the data is corrupt");
    }
    if (out_.size() != expected_)
      CBST_THROW("deflate: produced ", out_.size(), " bytes, the zip directory declares ", expected_, "; the file is corrupt");
    return std::move(out_);
  }

 private:
  void put(uint8_t b) {
    if (out_.size() >= expected_)
      CBST_THROW("deflate: output exceeds the declared ", expected_, " bytes; the file is corrupt");
    out_.push_back(b);
  }

  void stored() {
    in_.align_to_byte();
    const uint32_t len = in_.byte() | uint32_t(in_.byte()) << 8;
    const uint32_t nlen = in_.byte() | uint32_t(in_.byte()) << 8;
    if ((len ^ 0xffff) != nlen) CBST_THROW("deflate: stored block length check failed; the data is corrupt");
    for (uint32_t i = 0; i < len; ++i) put(in_.byte());
  }

  void codes(const Huffman& lit, const Huffman& dist) {
    while (true) {
      const int sym = in_.decode(lit);
      if (sym < 256) {
        put(uint8_t(sym));
      } else if (sym == 256) {
        return;
      } else {
        const int li = sym - 257;
        if (li >= 29) CBST_THROW("deflate: invalid length symbol; the data is corrupt");
        const uint32_t len = kLenBase[li] + in_.bits(kLenExtra[li]);
        const int di = in_.decode(dist);
        if (di >= 30) CBST_THROW("deflate: invalid distance symbol; the data is corrupt");
        const uint32_t d = kDistBase[di] + in_.bits(kDistExtra[di]);
        if (d > out_.size()) CBST_THROW("deflate: distance reaches before the start of the output; the data is corrupt");
        for (uint32_t i = 0; i < len; ++i) put(out_[out_.size() - d]);
      }
    }
  }

  void fixed() {
    if (!fixed_built_) {
      uint8_t lengths[288 + 30];
      for (int i = 0; i < 144; ++i) lengths[i] = 8;
      for (int i = 144; i < 256; ++i) lengths[i] = 9;
      for (int i = 256; i < 280; ++i) lengths[i] = 7;
      for (int i = 280; i < 288; ++i) lengths[i] = 8;
      for (int i = 0; i < 30; ++i) lengths[288 + i] = 5;
      build(fixed_lit_, lengths, 288);
      build(fixed_dist_, lengths + 288, 30);
      fixed_built_ = true;
    }
    codes(fixed_lit_, fixed_dist_);
  }

  void dynamic() {
    static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    const int nlen = int(in_.bits(5)) + 257;
    const int ndist = int(in_.bits(5)) + 1;
    const int ncode = int(in_.bits(4)) + 4;
    if (nlen > 286 || ndist > 30) CBST_THROW("deflate: bad code counts; the data is corrupt");
    uint8_t lengths[320] = {};
    for (int i = 0; i < ncode; ++i) lengths[kOrder[i]] = uint8_t(in_.bits(3));
    Huffman lencode;
    build(lencode, lengths, 19);
    int index = 0;
    while (index < nlen + ndist) {
      int sym = in_.decode(lencode);
      if (sym < 16) {
        lengths[index++] = uint8_t(sym);
        continue;
      }
      uint8_t value = 0;
      int repeat;
      if (sym == 16) {
        if (index == 0) CBST_THROW("deflate: repeat with no previous length; the data is corrupt");
        value = lengths[index - 1];
        repeat = 3 + int(in_.bits(2));
      } else if (sym == 17) {
        repeat = 3 + int(in_.bits(3));
      } else {
        repeat = 11 + int(in_.bits(7));
      }
      if (index + repeat > nlen + ndist) CBST_THROW("deflate: too many code lengths; the data is corrupt");
      while (repeat--) lengths[index++] = value;
    }
    if (lengths[256] == 0) CBST_THROW("deflate: no end-of-block code; the data is corrupt");
    Huffman lit, dist;
    build(lit, lengths, nlen);
    build(dist, lengths + nlen, ndist);
    codes(lit, dist);
  }

  BitReader in_;
  uint64_t expected_;
  std::vector<uint8_t> out_;
  Huffman fixed_lit_, fixed_dist_;
  bool fixed_built_ = false;
};

}  // namespace

std::vector<uint8_t> inflate(const uint8_t* src, size_t src_size, uint64_t expected_size) {
  // DEFLATE cannot expand more than 1032:1 (258-byte matches coded in 2 bits); a larger
  // declared size is a lie, and refusing it here avoids allocating it.
  if (expected_size / 1032 > src_size + 1)
    CBST_THROW("deflate: declared size ", expected_size, " is impossible for ", src_size,
               " compressed bytes; the file is corrupt");
  return Inflater(src, src_size, expected_size).run();
}

}  // namespace cbst::weights
