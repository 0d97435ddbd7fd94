// difftx attention-map MODEL_DIR --prompt TEXT [--layer L] [--head H]... [-o FILE.png] [--json]
//   [--focus TEXT] [--tokenizer DIR] [--no-special-tokens] [--max-tokens N]
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "cli/command.h"
#include "common/error.h"
#include "infer/attention_focus.h"
#include "infer/token_text.h"
#include "infer/vocab_fit.h"
#include "io/json_file.h"
#include "model/attention_maps.h"
#include "model/model_dir.h"
#include "plot/attention_plot.h"
#include "tokenizer/tokenizer.h"

namespace difftx::cli {
namespace {

ordered_json matrix_json(const std::vector<float>& m, int64_t T) {
  ordered_json rows = ordered_json::array();
  for (int64_t i = 0; i < T; ++i) rows.push_back(std::vector<float>(m.begin() + i * T, m.begin() + (i + 1) * T));
  return rows;
}

ordered_json focus_json(const AttentionFocus& f, bool differential) {
  auto head = [&](const HeadFocus& h) {
    ordered_json j = {{"head", h.head}};
    if (differential) {
      j["positive"] = h.positive;
      j["negative"] = h.negative;
      j["difference_share"] = h.difference;
    } else {
      j["softmax"] = h.positive;
    }
    return j;
  };
  ordered_json heads = ordered_json::array();
  for (const HeadFocus& h : f.heads) heads.push_back(head(h));
  return {{"text", f.text}, {"tokens", f.tokens}, {"uniform_share", f.uniform}, {"heads", heads},
          {"mean", head(f.mean)}};
}

void print_focus(const AttentionFocus& f, bool differential, int64_t T) {
  fmt::print("focus \"{}\": {} of {} tokens (position{} {}), a uniform row would give {} {:.3f}\n", f.text,
             f.tokens.size(), T, f.tokens.size() == 1 ? "" : "s", fmt::join(f.tokens, ","),
             f.tokens.size() == 1 ? "it" : "them", f.uniform);
  fmt::print("mass of the last token's row on them:\n");
  if (differential) fmt::print("  {:>5}  {:>8}  {:>8}  {:>14}\n", "head", "A1", "A2", "(A1-λA2) share");
  else fmt::print("  {:>5}  {:>8}\n", "head", "softmax");
  auto row = [&](const std::string& name, const HeadFocus& h) {
    if (differential) fmt::print("  {:>5}  {:8.3f}  {:8.3f}  {:14.3f}\n", name, h.positive, h.negative, h.difference);
    else fmt::print("  {:>5}  {:8.3f}\n", name, h.positive);
  };
  for (const HeadFocus& h : f.heads) row(std::to_string(h.head), h);
  row("mean", f.mean);
}

}  // namespace

Command add_attention_map(CLI::App& root) {
  struct Options {
    std::string dir, prompt, out, focus, tokenizer;
    int64_t layer = -1, max_tokens = 0;
    std::vector<std::string> heads;
    bool json = false, no_special = false, focus_given = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "attention-map", "Draw a layer's attention maps over a prompt (differential: A1, A2 and A1 - λ·A2) as a PNG");
  app->add_option("dir", o->dir, "Model directory (config.json, weights, tokenizer.json)")->required();
  app->add_option("--prompt", o->prompt, "Prompt text")->required();
  app->add_option("--layer", o->layer, "Decoder layer, 0-based; -1 = the last (default)");
  app->add_option("--head", o->heads, "Head(s) to show, 0-based; repeat or comma-separate (default: all)")
      ->delimiter(',');
  app->add_option("-o,--output", o->out, "PNG to write (default: attention-map.png; with --json only when given)")
      ->check(png_output);
  app->add_flag("--json", o->json, "Print the tokens and the matrices as JSON");
  app->add_option("--focus", o->focus, "Report the last token's attention mass on this part of the prompt");
  app->add_option("--tokenizer", o->tokenizer, "Directory with tokenizer.json (default: the model directory)");
  app->add_flag("--no-special-tokens", o->no_special, "Do not add the tokenizer's BOS/EOS around the prompt");
  app->add_option("--max-tokens", o->max_tokens, "Longest prompt accepted (default, or 0: max_position_embeddings)");
  return {app, [o, app]() {
            o->focus_given = app->count("--focus") > 0;
            if (o->max_tokens < 0) fail<ConfigError>("--max-tokens must be >= 0, got {}", o->max_tokens);
            if (o->layer < -1)
              fail<ConfigError>("--layer {}: give a layer from 0, or -1 for the last", o->layer);
            std::vector<int64_t> heads;
            for (const std::string& h : o->heads) {
              int64_t v = 0;
              const auto [end, ec] = std::from_chars(h.data(), h.data() + h.size(), v);
              if (h.empty() || ec != std::errc() || end != h.data() + h.size() || v < 0)
                fail<ConfigError>("--head \"{}\": expected a head number from 0", h);
              if (std::find(heads.begin(), heads.end(), v) != heads.end())
                fail<ConfigError>("--head {} is given twice", v);
              heads.push_back(v);
            }
            if (o->focus_given && o->focus.empty()) fail<ConfigError>("--focus: empty text (give a part of the prompt)");
            Model model = model_load(o->dir);
            const ModelConfig& c = model.config();
            Tokenizer tokenizer = Tokenizer::load(o->tokenizer.empty() ? o->dir : o->tokenizer);
            const std::vector<int32_t> ids = encode_prompt(tokenizer, model, o->prompt, !o->no_special, "--prompt");
            const int64_t layer = o->layer == -1 ? c.num_hidden_layers - 1 : o->layer;
            const AttentionMaps maps = attention_maps(model, ids, layer, heads,
                                                      o->max_tokens > 0 ? o->max_tokens : c.max_position_embeddings);
            const int64_t T = maps.seq_len;
            std::optional<AttentionFocus> focus;
            if (o->focus_given) focus = attention_focus(tokenizer, ids, maps, o->focus);
            const std::vector<std::string> tokens = tokenizer.id_to_tokens(ids);
            const std::vector<std::string> labels = token_labels(tokenizer, ids);
            const std::string out = o->out.empty() && !o->json ? "attention-map.png" : o->out;
            AttentionPlot plot;
            if (!out.empty()) {
              plot = write_attention_plot(maps, labels, fmt::format("{} ({}), layer {}", o->dir, c.model_type, layer), out);
              const std::vector<char32_t>& missing = plot.characters_without_font;
              if (!missing.empty()) {
                std::string shown;  // the first few code points
                for (size_t i = 0; i < std::min<size_t>(missing.size(), 8); ++i)
                  shown += fmt::format("{}U+{:04X}", i > 0 ? ", " : "", static_cast<uint32_t>(missing[i]));
                if (missing.size() > 8) shown += ", ...";
                const bool one = missing.size() == 1;
                spdlog::warn("{}: {} character{} of the token labels ({}) {} in no installed font and {} drawn as {} "
                             "holding {} code; install a font that covers {} (Debian: fonts-noto-cjk for Chinese, "
                             "Japanese and Korean, fonts-noto-color-emoji){}",
                             out, missing.size(), one ? "" : "s", shown, one ? "is" : "are", one ? "is" : "are",
                             one ? "a box" : "boxes", one ? "its" : "their", one ? "it" : "them",
                             o->json ? "" : "; --json gives the exact token strings");
              }
            }
            if (o->json) {
              ordered_json heads = ordered_json::array();
              for (const HeadMaps& h : maps.heads) {
                ordered_json j = {{"head", h.head}};
                if (maps.differential) {
                  j["lambda"] = h.lambda;
                  j["positive"] = matrix_json(h.positive, T);
                  j["negative"] = matrix_json(h.negative, T);
                  j["difference"] = matrix_json(h.difference, T);
                } else {
                  j["softmax"] = matrix_json(h.positive, T);
                }
                heads.push_back(std::move(j));
              }
              ordered_json doc = {{"model", o->dir}, {"model_type", c.model_type}, {"layer", layer},
                                  {"differential", maps.differential}, {"ids", ids}, {"tokens", tokens},
                                  {"labels", labels},
                                  {"heads", heads}};
              if (focus) doc["focus"] = focus_json(*focus, maps.differential);
              if (!out.empty()) doc["png"] = out;
              fmt::print("{}\n", doc.dump());
              return 0;
            }
            fmt::print("{} ({}), layer {} of {}, {} head{}, {} token{}\n", o->dir, c.model_type, layer,
                       c.num_hidden_layers, maps.heads.size(), maps.heads.size() == 1 ? "" : "s", T, T == 1 ? "" : "s");
            if (focus) print_focus(*focus, maps.differential, T);
            fmt::print("wrote {} ({}x{})\n", out, plot.width, plot.height);
            return 0;
          }};
}

}  // namespace difftx::cli
