// axolotl YAML to the typed training options (and the conversion options' YAML reader).
#include "common/error.h"
#include "config/train_config.h"
#include "fuzz/fuzz_util.h"

int difftx_fuzz_yaml(const uint8_t* data, size_t size) {
  const auto path = difftx::fuzz::scratch_file("config.yml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const difftx::TrainConfig c = difftx::train_config_load(path);
    (void)c;
  } catch (const difftx::Error&) {
  }
  return 0;
}
DIFFTX_FUZZ_ENTRY(yaml)
