#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/error.h"

namespace difftx {

void log_init() {
  auto logger = spdlog::stderr_color_mt("difftx");
  logger->set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
}

void log_set_level(std::string_view name) {
  auto level = spdlog::level::from_str(std::string(name));
  if (level == spdlog::level::off && name != "off") {
    fail<ConfigError>("--log-level '{}' is not a level (expected trace, debug, info, warn, error, off)", name);
  }
  spdlog::set_level(level);
}

}  // namespace difftx
