// Training gradients against the independent PyTorch reference (tools/reference/train_ref.py):
// loss and every parameter gradient, for base and differential layouts. Bound: per tensor,
// max|diff| / max|ref| <= 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "golden_util.h"
#include "test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/trace.h"

namespace difftx {
namespace {

class GradientTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GradientTest, LossAndEveryGradientMatchReference) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  auto train = json_read_file(g.dir / "train.json");
  std::vector<int32_t> targets = test::next_token_targets(g.dir / "train.json");
  int64_t counted = 0;
  for (int32_t t : targets) counted += t != kIgnoreIndex;
  ASSERT_EQ(counted, train["num_targets"].get<int64_t>());

  std::vector<float> grads(model.weights().size(), 0.0f);
  ForwardTrace trace;
  const double loss = model.loss_and_backward(g.batch, targets, 1.0f / counted, grads, trace, g.options()) / counted;
  SafetensorsFile ref(g.dir / "grads.safetensors");
  std::vector<float> ref_loss(1);
  ref.load_f32(*ref.find("loss"), ref_loss.data());
  EXPECT_NEAR(loss, ref_loss[0], 1e-4 * std::abs(ref_loss[0]));

  double worst = 0;
  std::string worst_name;
  for (const auto& name : train["trainable"]) {
    const std::string n = name.get<std::string>();
    const TensorInfo* t = ref.find(n);
    ASSERT_NE(t, nullptr) << n;
    std::vector<float> expected(t->numel());
    ref.load_f32(*t, expected.data());
    const ParamSpec& p = model.table().at(n);
    double max_diff = 0, max_ref = 1e-30;
    for (uint64_t i = 0; i < p.numel; ++i) {
      max_diff = std::max(max_diff, std::abs(double(grads[p.offset + i]) - expected[i]));
      max_ref = std::max(max_ref, std::abs(double(expected[i])));
    }
    // A lambda vector's gradient is one scalar dLoss/dlambda (a sum over every attention term, with
    // heavy cancellation: diff_double_mix_half's is 1e3 times smaller than its terms) times the
    // re-parameterisation's factor, so its float32 error follows the products' summation order:
    // 9e-6 with OpenBLAS's products, 1.3e-4 with oneDNN's, both accurate to 1e-6 (kernels Gemm tests).
    const bool lambda_vector = n.find(".lambda_q") != std::string::npos || n.find(".lambda_k") != std::string::npos;
    const double tol = lambda_vector ? 5e-4 : 1e-4;
    EXPECT_LE(max_diff / max_ref, tol) << n << " max|ref| " << max_ref;
    if (max_diff / max_ref > worst) {
      worst = max_diff / max_ref;
      worst_name = n;
    }
  }
  std::printf("[ grads    ] %-28s loss %.6f (ref %.6f), worst tensor %.2g (%s)\n", GetParam().c_str(), loss,
              ref_loss[0], worst, worst_name.c_str());
}

// gradient_checkpointing: the backward recomputes each layer's activations from its kept input
// with the same kernels, so loss and every gradient are bit-identical to the traced pass; the
// trace then holds only the layers' inputs (and the kept layers' activations). One trace object
// serves all three passes, as a trainer's does.
TEST_P(GradientTest, RecomputedActivationsGiveBitIdenticalGradients) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  std::vector<int32_t> targets = test::next_token_targets(g.dir / "train.json");
  const int64_t L = model.config().num_hidden_layers;
  ForwardTrace trace;
  auto run = [&](bool recompute, std::vector<int64_t> kept, std::vector<int64_t>* done_order) {
    std::vector<float> grads(model.weights().size(), 0.0f);
    ForwardOptions options = g.options();
    options.recompute_activations = recompute;
    options.kept_layers = std::move(kept);
    const double loss = model.loss_and_backward(g.batch, targets, 0.25f, grads, trace, options,
                                                [&](int64_t l) { done_order->push_back(l); });
    return std::make_pair(loss, grads);
  };
  std::vector<int64_t> order_full, order_recomputed, order_kept;
  const auto [loss_full, grads_full] = run(false, {}, &order_full);
  const auto [loss_recomputed, grads_recomputed] = run(true, {}, &order_recomputed);
  for (int64_t l = 0; l < L; ++l) {  // only the inputs were kept
    const LayerTrace& layer = trace.layers[l];
    EXPECT_EQ(layer.x_in.size(), static_cast<size_t>(g.batch.batch * g.batch.seq_len * model.config().hidden_size));
    EXPECT_TRUE(layer.q.empty() && layer.xn1.empty() && layer.gate.empty()) << "layer " << l;
  }
  const auto [loss_kept, grads_kept] = run(true, {L - 1}, &order_kept);
  EXPECT_FALSE(trace.layers[L - 1].q.empty());  // the kept layer's activations, for the monitor
  if (L > 1) {
    EXPECT_TRUE(trace.layers[0].q.empty());
  }

  EXPECT_EQ(loss_recomputed, loss_full);
  EXPECT_EQ(loss_kept, loss_full);
  EXPECT_EQ(order_recomputed, order_full);
  EXPECT_EQ(order_kept, order_full);
  ASSERT_EQ(grads_recomputed.size(), grads_full.size());
  size_t differing = 0, differing_kept = 0;
  for (size_t i = 0; i < grads_full.size(); ++i) {
    differing += std::memcmp(&grads_recomputed[i], &grads_full[i], sizeof(float)) != 0;
    differing_kept += std::memcmp(&grads_kept[i], &grads_full[i], sizeof(float)) != 0;
  }
  EXPECT_EQ(differing, 0u) << "of " << grads_full.size() << " gradient entries";
  EXPECT_EQ(differing_kept, 0u) << "of " << grads_full.size() << " gradient entries";
  double norm = 0;
  for (float x : grads_full) norm += double(x) * x;
  EXPECT_GT(norm, 0.0);  // the comparison is of real gradients
}

INSTANTIATE_TEST_SUITE_P(Cases, GradientTest, ::testing::ValuesIn(test::training_case_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace difftx
