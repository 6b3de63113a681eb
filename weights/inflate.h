// Raw DEFLATE (RFC 1951) decompression for deflated zip members.
//
// torch.save never compresses, but archives re-packed with a zip tool do. The output must
// be exactly `expected_size` bytes (from the zip central directory); a stream that would
// produce more, fewer, or reads past its input is an error, so a hostile member cannot
// make us allocate more than its declared size, and that size is checked against the
// 1032:1 limit of DEFLATE before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cbst::weights {

std::vector<uint8_t> inflate(const uint8_t* src, size_t src_size, uint64_t expected_size);

}  // namespace cbst::weights
