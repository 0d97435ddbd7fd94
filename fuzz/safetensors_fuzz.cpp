// safetensors header parsing and the tensor table: any byte string is a valid file or a FileError.
#include "fuzz/fuzz_util.h"
#include "io/safetensors.h"
#include "common/error.h"

int difftx_fuzz_safetensors(const uint8_t* data, size_t size) {
  try {
    const auto header = difftx::safetensors_parse(reinterpret_cast<const std::byte*>(data), size, "fuzz.safetensors");
    (void)header;
  } catch (const difftx::Error&) {
  }
  return 0;
}
DIFFTX_FUZZ_ENTRY(safetensors)
