// Logging: spdlog to stderr, so that stdout carries only a command's result.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace difftx {

// Sets the level from a name: trace, debug, info, warn, error, off. Throws ConfigError otherwise.
void log_set_level(std::string_view name);

// Installs the stderr logger with difftx's pattern; called once by the CLI and the tests.
void log_init();

}  // namespace difftx
