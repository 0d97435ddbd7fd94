// --device on the inference commands: cpu is the default; cuda runs on a GPU when this build has
// the CUDA backend and one is visible (the same top tokens as the CPU), and is otherwise an exit 2
// that says why. A bad device name is an exit 2 naming the choices.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "kernels/backend.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;

std::string embedded_model() { return (test::source_dir() / "examples" / "models" / "wp-llama-12m").string(); }

bool gpu_visible() {
  try {
    make_backend("cuda");
    return true;
  } catch (const DeviceError&) {
    return false;
  }
}

TEST(DeviceCli, CudaRunsOrSaysWhyNot) {
  const std::vector<std::string> forward = {"forward", embedded_model(), "--ids", "1,415,3340,302,272", "--top", "3",
                                            "--json", "--weight-dtype", "f32"};
  auto cpu = run_difftx(forward);
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  std::vector<std::string> on_gpu = forward;
  on_gpu.insert(on_gpu.end(), {"--device", "cuda"});
  auto gpu = run_difftx(on_gpu);
  if (gpu_visible()) {
    ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
    const auto a = nlohmann::json::parse(cpu.out), b = nlohmann::json::parse(gpu.out);
    ASSERT_EQ(a.size(), b.size());
    for (size_t t = 0; t < a.size(); ++t)
      for (size_t j = 0; j < 3; ++j) {
        EXPECT_EQ(a[t]["top"][j]["id"], b[t]["top"][j]["id"]) << "position " << t;
        EXPECT_NEAR(a[t]["top"][j]["logit"].get<double>(), b[t]["top"][j]["logit"].get<double>(), 1e-3);
      }
  } else {
    EXPECT_EQ(gpu.exit_code, 2) << gpu.err;
    const bool built = built_with_cuda();
    EXPECT_NE(gpu.err.find(built ? "CUDA device" : "built without CUDA"), std::string::npos) << gpu.err;
  }
  for (const char* command : {"generate", "eval"}) {
    std::vector<std::string> args = {command, embedded_model(), "--device", "gpu"};
    const std::vector<std::string> input = command == std::string("generate") ? std::vector<std::string>{"--prompt", "x"}
                                                                              : std::vector<std::string>{"--text", (test::source_dir() / "README.md").string()};
    args.insert(args.end(), input.begin(), input.end());
    auto bad = run_difftx(args);
    EXPECT_EQ(bad.exit_code, 2) << command;
    EXPECT_NE(bad.err.find("cpu, cuda, cuda:N"), std::string::npos) << bad.err;
  }
}

// A CUDA build loads cuBLASLt only for a CUDA backend (kernels/cuda/cublaslt_library.h): linked
// at start-up, the 540 MB library cost every CPU run ~150 MB of resident memory and ~60 ms. The
// dynamic loader's own log (LD_DEBUG=files) of a CPU forward must not name it.
TEST(DeviceCli, CpuRunsDoNotLoadCublasLt) {
  const auto run = test::run_program(test::difftx_binary(),
                                     {"forward", embedded_model(), "--ids", "1,415,3340", "--top", "1", "--json"},
                                     {"LD_DEBUG=files"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("libc.so.6"), std::string::npos) << "the loader's log is missing: " << run.err.substr(0, 2000);
  EXPECT_EQ(run.err.find("libcublasLt"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace difftx
