// config.json to the typed model config (and the sizes derived from it).
#include "common/error.h"
#include "fuzz/fuzz_util.h"
#include "io/json_file.h"
#include "io/model_config.h"

int difftx_fuzz_config(const uint8_t* data, size_t size) {
  try {
    const auto json = difftx::json_parse(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
    const difftx::ModelConfig c = difftx::model_config_parse(json, "config.json");
    (void)c;
  } catch (const difftx::Error&) {
  }
  return 0;
}
DIFFTX_FUZZ_ENTRY(config)
