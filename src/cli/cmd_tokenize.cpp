// difftx tokenize --tokenizer DIR [--add-special-tokens] [--no-parse-special] [--verbose | --json] TEXT|--file F
// difftx detokenize --tokenizer DIR [--skip-special-tokens] [--clean-up-spaces] IDS...|--file F
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/id_list.h"
#include "io/text_file.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace difftx::cli {

namespace {

// The bytes of a file, or of standard input for "-".
std::string read_input(const std::string& path) {
  if (path == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) fail<FileError>("-: cannot read standard input");
    return text;
  }
  return read_text_file(path);
}

// A token string for display: JSON string syntax, so that spaces, newlines and control bytes show.
std::string display_token(const std::string& token) {
  return nlohmann::json(token).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Command add_tokenize(CLI::App& root) {
  struct Options {
    std::string dir, text, file;
    bool add_special = false, no_parse_special = false, verbose = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "tokenize", "Encode text to token ids with a Hugging Face tokenizer.json (printed comma-separated, as forward --ids takes them)");
  app->add_option("--tokenizer", o->dir, "Directory with tokenizer.json (+ tokenizer_config.json)")->required();
  auto* text = app->add_option("text", o->text, "The text to encode (exactly as given)");
  auto* file = app->add_option("--file", o->file, "Encode the bytes of this file instead (- for standard input)");
  text->excludes(file);
  app->add_flag("--add-special-tokens", o->add_special,
                "Add the special tokens of the tokenizer's post-processor / tokenizer_config.json (e.g. BOS)");
  app->add_flag("--no-parse-special", o->no_parse_special,
                "Tokenize special tokens written in the text (e.g. <|eot_id|>) as plain text instead of their ids");
  auto* verbose = app->add_flag("--verbose", o->verbose, "One line per token: position, id and token string");
  auto* json = app->add_flag("--json", o->json, "Print {\"ids\": [...], \"tokens\": [...]}");
  verbose->excludes(json);
  return {app, [o, text, file]() {
            if (text->count() == 0 && file->count() == 0)
              fail<ConfigError>("tokenize: give the text as an argument or --file FILE");
            Tokenizer tokenizer = Tokenizer::load(o->dir);
            std::string input = file->count() ? read_input(o->file) : o->text;
            EncodeOptions options;
            options.add_special_tokens = o->add_special;
            if (o->no_parse_special) options.parse_special = false;
            DroppedText dropped;
            options.dropped = &dropped;
            std::vector<int32_t> ids;
            try {
              ids = tokenizer.encode(input, options);
            } catch (const TextError& e) {
              if (file->count()) fail<TextError>("{}: {}", o->file, e.what());
              throw;
            }
            if (const std::string w = dropped.warning(); !w.empty()) spdlog::warn("{}", w);
            if (o->json) {
              nlohmann::json out;
              out["ids"] = ids;
              out["tokens"] = tokenizer.id_to_tokens(ids);
              fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            } else if (o->verbose) {
              std::vector<std::string> tokens = tokenizer.id_to_tokens(ids);
              for (size_t i = 0; i < ids.size(); ++i)
                fmt::print("{:>6} {:>8}  {}{}\n", i, ids[i], display_token(tokens[i]), tokenizer.is_special(ids[i]) ? "  (special)" : "");
              fmt::print("{} tokens from {} bytes\n", ids.size(), input.size());
            } else {
              fmt::print("{}\n", fmt::join(ids, ","));
            }
            return 0;
          }};
}

Command add_detokenize(CLI::App& root) {
  struct Options {
    std::string dir, file;
    std::vector<std::string> ids;
    bool skip_special = false, clean_up = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "detokenize", "Decode token ids to text with a Hugging Face tokenizer.json (printed exactly, no newline added)");
  app->add_option("--tokenizer", o->dir, "Directory with tokenizer.json (+ tokenizer_config.json)")->required();
  auto* ids = app->add_option("ids", o->ids, "Token ids, separated by commas and/or spaces (e.g. 9906,11,1917)");
  auto* file = app->add_option("--file", o->file, "Read the ids from this file instead (- for standard input)");
  ids->excludes(file);
  app->add_flag("--skip-special-tokens", o->skip_special, "Leave out special tokens (BOS, EOS, ...)");
  app->add_flag("--clean-up-spaces", o->clean_up,
                "Apply transformers' clean_up_tokenization_spaces (\" .\" -> \".\", \" n't\" -> \"n't\", ...)");
  return {app, [o, ids, file]() {
            if (ids->count() == 0 && file->count() == 0)
              fail<ConfigError>("detokenize: give the ids as arguments or --file FILE");
            std::vector<int32_t> values;
            if (file->count()) {
              parse_ids(read_input(o->file), o->file, values);
            } else {
              for (const std::string& arg : o->ids) parse_ids(arg, "ids", values);
            }
            Tokenizer tokenizer = Tokenizer::load(o->dir);
            DecodeOptions options;
            options.skip_special_tokens = o->skip_special;
            options.clean_up_tokenization_spaces = o->clean_up;
            std::string text = tokenizer.decode(values, options);
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
            return 0;
          }};
}

}  // namespace difftx::cli
