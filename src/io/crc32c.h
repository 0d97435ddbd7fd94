// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), as TFRecord framing uses it,
// and TensorFlow's "masked" form of it. Source: RFC 3720 appendix B.4 (the polynomial) and
// TensorFlow's tsl/lib/hash/crc32c.h (the mask: rotate right by 15 bits, add 0xa282ead8).
#pragma once

#include <cstddef>
#include <cstdint>

namespace difftx {

// CRC-32C of `size` bytes; `crc` continues an earlier value (0 to start).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// The masked CRC TFRecord stores, so that a CRC of data that itself holds CRCs stays well mixed.
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace difftx
