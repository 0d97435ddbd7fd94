// A subcommand of the difftx CLI: its CLI11 parser and the function that runs it.
// Commands are thin: parse flags, call the library, print. Errors are thrown as difftx::Error.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace difftx::cli {

struct Command {
  CLI::App* app;             // the subcommand's parser (owned by the main app)
  std::function<int()> run;  // runs after a successful parse; returns the exit code
};

Command add_init(CLI::App& root);
Command add_inspect(CLI::App& root);
Command add_forward(CLI::App& root);
Command add_convert(CLI::App& root);
Command add_merge_lora(CLI::App& root);
Command add_generate(CLI::App& root);
Command add_eval(CLI::App& root);
Command add_train(CLI::App& root);
Command add_evaluate(CLI::App& root);
Command add_tokenize(CLI::App& root);
Command add_detokenize(CLI::App& root);
Command add_plot(CLI::App& root);
Command add_attention_map(CLI::App& root);
Command add_serve(CLI::App& root);

// Threads for OpenMP and OpenBLAS (threads <= 0: leave the default, all cores). main.cpp.
void set_threads(int threads);

// The -o of a picture: difftx writes PNG only, so a name with another extension (map.jpg, x.svg)
// is refused when the options are parsed, before any work; a name without one is taken as given.
inline const CLI::Validator png_output(
    [](std::string& name) -> std::string {
      std::string ext = std::filesystem::path(name).extension().string();
      for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return ext.empty() || ext == ".png" ? std::string()
                                          : fmt::format("{}: difftx writes PNG pictures only; name the file .png", name);
    },
    "FILE.png");

// A --seed: a whole number from 0 to 2^64 - 1, written in decimal digits. CLI11 alone would clamp
// 2^64 and above to 2^64 - 1 and name a floating-point range for -1.
inline const CLI::Validator seed_value(
    [](std::string& v) -> std::string {
      uint64_t seed = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seed);
      const bool digits = !v.empty() && std::isdigit(static_cast<unsigned char>(v[0])) != 0;
      return digits && ec == std::errc() && end == v.data() + v.size()
                 ? std::string()
                 : fmt::format("{}the seed is a whole number from 0 to 2^64 - 1 (18446744073709551615)",
                               v.empty() ? "an empty value; " : v + ": ");
    },
    "SEED");

}  // namespace difftx::cli
