// difftx: native toolkit for Differential Transformers. Entry point: global flags, subcommands,
// and the mapping of errors to exit codes (0 ok, 2 bad input or usage, 1 internal error).
#include <omp.h>

#include <cblas.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/error_report.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "kernels/backend.h"

namespace {

constexpr const char* kVersion = "0.1.0";

// The commands that run the model's dense products through OpenBLAS, where the kernel set it chose
// decides the speed (the others read and write files; convert runs forward passes only with
// --debug, a few tokens).
bool runs_dense_products(const std::string& command) {
  for (const char* name : {"forward", "generate", "eval", "train", "evaluate", "serve"})
    if (command == name) return true;
  return false;
}

// CLI11 reads an empty value ("--top-p ''") of a numeric option as 0; refuse it in every command.
void refuse_empty_numbers(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    if (type != "INT" && type != "UINT" && type != "FLOAT") continue;
    option->check(CLI::Validator(
        [](std::string& v) { return v.empty() ? std::string("an empty value; expected a number") : std::string(); },
        ""));
  }
  for (CLI::App* sub : app.get_subcommands({})) refuse_empty_numbers(*sub);
}

}  // namespace

namespace difftx::cli {

void set_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

}  // namespace difftx::cli

int main(int argc, char** argv) {
  // Over a file-size limit (ulimit -f, quotas) a write then fails with EFBIG, which becomes a clear
  // error and a removed staging output, instead of SIGXFSZ killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  difftx::log_init();
  CLI::App app{"difftx: native toolkit for Differential Transformers (arXiv 2410.05258)", "difftx"};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  int threads = 0;
  std::string log_level = "info";
  app.add_option("--threads", threads, "Threads for OpenMP and OpenBLAS (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();

  std::vector<difftx::cli::Command> commands = {
      difftx::cli::add_init(app),
      difftx::cli::add_inspect(app),
      difftx::cli::add_forward(app),
      difftx::cli::add_convert(app),
      difftx::cli::add_merge_lora(app),
      difftx::cli::add_generate(app),
      difftx::cli::add_eval(app),
      difftx::cli::add_train(app),
      difftx::cli::add_evaluate(app),
      difftx::cli::add_tokenize(app),
      difftx::cli::add_detokenize(app),
      difftx::cli::add_plot(app),
      difftx::cli::add_attention_map(app),
      difftx::cli::add_serve(app),
  };

  refuse_empty_numbers(app);

  if (argc > 1 && argv[1][0] != '-') {  // CLI11 would only say "a subcommand is required"
    bool known = false;
    std::string names;
    for (const auto& command : commands) {
      known = known || command.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + command.app->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "error: unknown command \"%s\" (commands: %s; see difftx --help)\n", argv[1], names.c_str());
      return 2;
    }
  }
  // Usage errors read like every other error: "error: ..." naming the option, then where to look.
  app.failure_message([](const CLI::App* root, const CLI::Error& e) {
    const auto chosen = root->get_subcommands();
    return fmt::format("error: {}\nRun difftx{} --help for more information.\n", e.what(),
                       chosen.empty() ? std::string() : " " + chosen.front()->get_name());
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    difftx::log_set_level(log_level);
    difftx::cli::set_threads(threads);
    for (auto& command : commands) {
      if (!command.app->parsed()) continue;
      if (runs_dense_products(command.app->get_name())) difftx::warn_about_slow_cpu_kernels();
      return command.run();
    }
  } catch (...) {  // printed as cli/error_report.h says
    return difftx::cli::report_error(std::current_exception());
  }
  return 2;
}
