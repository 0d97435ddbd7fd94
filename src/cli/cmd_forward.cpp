// difftx forward DIR --ids 1,2,3 [--top 5] [--device cpu|cuda[:N]] [--weight-dtype auto|f32|bf16] [--json]
#include <chrono>

#include "cli/command.h"
#include "cli/inference_options.h"
#include "cli/id_list.h"
#include "common/error.h"
#include "model/finite_logits.h"
#include "infer/topk.h"
#include "io/json_file.h"

namespace difftx::cli {


Command add_forward(CLI::App& root) {
  struct Options {
    InferenceOptions inference;
    std::string dir, ids;
    int64_t top = 5;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("forward", "Run the model on token ids and print the top next-token logits per position");
  app->add_option("dir", o->dir, "Hugging Face model directory")->required();
  app->add_option("--ids", o->ids, "Token ids separated by commas and/or spaces, e.g. 1,2,3")->required();
  app->add_option("--top", o->top, "How many logits to show per position")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  add_inference_options(app, o->inference);
  app->add_flag("--json", o->json, "Machine-readable output");
  return {app, [o]() {
            std::vector<int32_t> ids;
            parse_ids(o->ids, "--ids", ids);
            if (ids.empty()) fail<ConfigError>("--ids: no token ids given");
            Model model = load_for_inference(o->dir, o->inference);
            TokenBatch batch;
            batch.batch = 1;
            batch.seq_len = static_cast<int64_t>(ids.size());
            batch.ids = ids;
            std::vector<float> logits;
            auto start = std::chrono::steady_clock::now();
            model.forward(batch, nullptr, LogitsMode::all, logits);
            double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const int64_t V = model.config().vocab_size;
            if (const int64_t bad = first_non_finite_row(logits.data(), batch.seq_len, V); bad >= 0)
              fail_non_finite(model, "the logits", bad);
            ordered_json out = ordered_json::array();
            const int64_t top = std::min<int64_t>(o->top, V);  // a --top beyond the vocabulary shows all of it
            if (!o->json) fmt::print("{:>5} {:>8}  top-{} next tokens (id: logit)\n", "pos", "id", top);
            for (size_t t = 0; t < ids.size(); ++t) {
              auto best = logits_topk(logits.data() + t * V, V, top);
              if (o->json) {
                ordered_json row = {{"position", t}, {"id", ids[t]}, {"top", ordered_json::array()}};
                for (const auto& s : best) row["top"].push_back({{"id", s.id}, {"logit", s.logit}});
                out.push_back(row);
              } else {
                std::string line;
                for (const auto& s : best) line += fmt::format("  {:>6}: {:8.4f}", s.id, s.logit);
                fmt::print("{:>5} {:>8} {}\n", t, ids[t], line);
              }
            }
            if (o->json) {
              fmt::print("{}\n", out.dump(2));
            } else {
              fmt::print("{} tokens in {:.3f} s ({:.1f} tokens/s)\n", ids.size(), seconds,
                         static_cast<double>(ids.size()) / seconds);
            }
            return 0;
          }};
}

}  // namespace difftx::cli
