// Every operation of the CUDA backend against the CPU backend on random inputs (odd sizes, GQA
// groups, masks, cache offsets), in both math modes. SKIPPED where there is no CUDA backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/backend_test_util.h"
#include "io/model_config.h"
#include "model/diff_layout.h"

namespace difftx::test {
namespace {

class BackendOps : public ::testing::TestWithParam<MathMode> {
 protected:
  MathMode mode() const { return GetParam(); }
  double tol() const { return tolerance(GetParam()); }
  std::shared_ptr<Backend> cpu = cpu_backend();
  std::mt19937 rng{1234};
};

std::string mode_name(const ::testing::TestParamInfo<MathMode>& info) {
  return info.param == MathMode::f32 ? "f32" : "bf16";
}

// A Linear weight of the backend from host float32 values, kept in float32 or bfloat16.
struct Weight {
  Buffer buf;
  LinearWeight w;
};
Weight weight_on(Backend& be, const std::vector<float>& values, bool bf16) {
  Weight out;
  if (bf16) {
    out.buf = on(be, to_bf16(values));
    out.w.bf16 = out.buf.as<const uint16_t>();
  } else {
    out.buf = on(be, values);
    out.w.f32 = out.buf.as<const float>();
  }
  return out;
}

TEST_P(BackendOps, Embedding) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const int64_t V = 37, D = 29, n = 11;
  const std::vector<float> table = random_floats(rng, V * D);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % V);
  for (bool bf16 : {false, true}) {
    std::vector<float> results[2];
    int i = 0;
    for (Backend* be : {cpu.get(), gpu.get()}) {
      Weight t = weight_on(*be, table, bf16);
      Buffer d_ids = on(*be, ids), out = be->alloc_array<float>(n * D);
      poison(*be, out);
      be->embedding_forward(d_ids.as<int32_t>(), n, t.w, D, out.as<float>());
      results[i++] = back<float>(*be, out, n * D);
    }
    EXPECT_EQ(results[0], results[1]) << (bf16 ? "bf16" : "f32") << " table: a gather is exact";
  }
}

TEST_P(BackendOps, RmsNorm) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  for (int64_t dim : {1, 13, 64, 2049})
    for (bool with_weight : {false, true}) {
      const int64_t rows = 7;
      const std::vector<float> x = random_floats(rng, rows * dim, 3.0f), w = random_floats(rng, dim);
      std::vector<float> results[2];
      int i = 0;
      for (Backend* be : {cpu.get(), gpu.get()}) {
        Buffer dx = on(*be, x), dw = on(*be, w), out = be->alloc_array<float>(rows * dim);
        poison(*be, out);
        be->rmsnorm_forward(out.as<float>(), dx.as<float>(), with_weight ? dw.as<float>() : nullptr, rows, dim, 1e-5f);
        results[i++] = back<float>(*be, out, rows * dim);
      }
      expect_close(results[1], results[0], 1e-5, "rmsnorm dim " + std::to_string(dim));
    }
}

struct LinearCase {
  int64_t m, k, n;
  bool bias, accumulate, padded;
};

TEST_P(BackendOps, Linear) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const LinearCase cases[] = {{1, 64, 33, false, false, false}, {1, 45, 7, true, true, false},
                              {5, 520, 130, true, false, true}, {8, 64, 3, false, true, true},
                              {9, 64, 33, true, true, false},   {70, 520, 130, false, false, true},
                              {37, 45, 66, true, true, true}};
  for (const LinearCase& c : cases)
    for (bool bf16 : {false, true}) {
      const int64_t xs = c.padded ? c.k + 3 : c.k, ys = c.padded ? c.n + 5 : c.n;
      const std::vector<float> x = random_floats(rng, c.m * xs), w = random_floats(rng, c.n * c.k, 0.1f);
      const std::vector<float> bias = random_floats(rng, c.n), y0 = random_floats(rng, c.m * ys);
      std::vector<float> results[2];
      int i = 0;
      for (Backend* be : {cpu.get(), gpu.get()}) {
        Weight wt = weight_on(*be, w, bf16);
        Buffer dx = on(*be, x), db = on(*be, bias), y = on(*be, y0);
        be->linear_forward(dx.as<float>(), c.m, c.k, wt.w, c.bias ? db.as<float>() : nullptr, c.n, y.as<float>(),
                           c.accumulate, xs, ys);
        results[i++] = back<float>(*be, y, c.m * ys);
      }
      expect_close(results[1], results[0], tol(),
                   fmt::format("linear m={} k={} n={} bf16 weights={}", c.m, c.k, c.n, bf16));
    }
}

TEST_P(BackendOps, RmsNormLinear) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  // (m, k): staged decoding products (up to 64 KiB of input rows: 6 x 2048 and 8 x 2048 floats),
  // one too wide to stage (8 x 4096), and GEMMs.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 48}, {4, 50}, {8, 256}, {6, 2048}, {8, 2048}, {8, 4096},
                                                {12, 48}, {40, 256}};
  for (auto [m, k] : shapes)
    for (bool bf16 : {false, true}) {
      const int64_t ns[] = {24, 8, 8};
      const std::vector<float> x = random_floats(rng, m * k, 2.0f), nw = random_floats(rng, k);
      std::vector<std::vector<float>> ws;
      std::vector<std::vector<float>> bs;
      for (int64_t n : ns) {
        ws.push_back(random_floats(rng, n * k, 0.1f));
        bs.push_back(random_floats(rng, n));
      }
      std::vector<std::vector<float>> results[2];
      int i = 0;
      for (Backend* be : {cpu.get(), gpu.get()}) {
        Buffer dx = on(*be, x), dnw = on(*be, nw), xn = be->alloc_array<float>(m * k);
        poison(*be, xn);
        std::vector<Weight> wts;
        std::vector<Buffer> biases, ys;
        std::vector<LinearOut> outs;
        for (int j = 0; j < 3; ++j) {
          wts.push_back(weight_on(*be, ws[j], bf16));
          biases.push_back(on(*be, bs[j]));
          ys.push_back(be->alloc_array<float>(m * ns[j]));
          poison(*be, ys.back());
          outs.push_back({wts.back().w, j == 1 ? nullptr : biases.back().as<const float>(), ns[j], ys.back().as<float>()});
        }
        be->rmsnorm_linear_forward(dx.as<float>(), m, k, dnw.as<float>(), 1e-6f, xn.as<float>(), outs);
        results[i].push_back(back<float>(*be, xn, m * k));
        for (int j = 0; j < 3; ++j) results[i].push_back(back<float>(*be, ys[j], m * ns[j]));
        ++i;
      }
      expect_close(results[1][0], results[0][0], 1e-5, fmt::format("rmsnorm_linear xn m={} k={}", m, k));
      for (int j = 1; j <= 3; ++j)
        expect_close(results[1][j], results[0][j], tol(),
                     fmt::format("rmsnorm_linear output {} m={} k={} bf16 weights={}", j, m, k, bf16));
    }
}

TEST_P(BackendOps, SwigluLinear) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const std::pair<int64_t, int64_t> shapes[] = {{1, 40}, {3, 96}, {2, 8192}, {9, 96}, {20, 40}};
  for (auto [m, k] : shapes)
    for (bool bf16 : {false, true}) {
      const int64_t n = 19;
      const std::vector<float> gate = random_floats(rng, m * k, 2.0f), up = random_floats(rng, m * k);
      const std::vector<float> w = random_floats(rng, n * k, 0.05f), bias = random_floats(rng, n);
      const std::vector<float> y0 = random_floats(rng, m * n);
      std::vector<float> results[2];
      int i = 0;
      for (Backend* be : {cpu.get(), gpu.get()}) {
        Weight wt = weight_on(*be, w, bf16);
        Buffer dg = on(*be, gate), du = on(*be, up), db = on(*be, bias), y = on(*be, y0);
        be->swiglu_linear_forward(dg.as<float>(), du.as<float>(), m, k, wt.w, db.as<float>(), n, y.as<float>(), true);
        results[i++] = back<float>(*be, y, m * n);
      }
      expect_close(results[1], results[0], tol(), fmt::format("swiglu_linear m={} k={} bf16 weights={}", m, k, bf16));
    }
}

TEST_P(BackendOps, RopeCacheWrite) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const int64_t B = 2, T = 5, QH = 6, KH = 4, VH = 2, d = 8, capacity = 16, past = 3;
  const int64_t qs = QH * d + 2, ks = KH * d + 4;
  const std::vector<float> q = random_floats(rng, B * T * qs), k = random_floats(rng, B * T * ks);
  const std::vector<float> v = random_floats(rng, B * T * VH * d);
  const std::vector<float> cos = random_floats(rng, B * T * d / 2), sin = random_floats(rng, B * T * d / 2);
  const std::vector<float> kc0 = random_floats(rng, B * KH * capacity * d), vc0 = random_floats(rng, B * VH * capacity * d);
  std::vector<std::vector<float>> results[2];
  int i = 0;
  for (Backend* be : {cpu.get(), gpu.get()}) {
    Buffer dq = on(*be, q), dk = on(*be, k), dv = on(*be, v), dc = on(*be, cos), dsn = on(*be, sin);
    Buffer kc = on(*be, kc0), vc = on(*be, vc0);
    be->rope_cache_write(dq.as<float>(), QH, qs, dk.as<float>(), KH, ks, dv.as<float>(), VH, B, T, d, dc.as<float>(),
                         dsn.as<float>(), kc.as<float>(), vc.as<float>(), capacity, past);
    results[i++] = {back<float>(*be, dq, q.size()), back<float>(*be, dk, k.size()), back<float>(*be, kc, kc0.size()),
                    back<float>(*be, vc, vc0.size())};
  }
  const char* names[] = {"q", "k", "key cache", "value cache"};
  for (int j = 0; j < 4; ++j) expect_close(results[1][j], results[0][j], 1e-6, names[j]);
}

// Segment ids of a cache row: runs of documents with some padding (0) positions.
std::vector<int32_t> random_segments(std::mt19937& rng, int64_t B, int64_t capacity) {
  std::vector<int32_t> seg(static_cast<size_t>(B * capacity));
  for (int64_t b = 0; b < B; ++b) {
    int32_t s = 1;
    for (int64_t p = 0; p < capacity; ++p) {
      if (rng() % 9 == 0) ++s;
      seg[b * capacity + p] = rng() % 13 == 0 ? 0 : s;
    }
  }
  return seg;
}

struct AttentionCase {
  int64_t B, T, past, H, KV, d, window;
  bool segments, stats;
};

// Standard attention: decoding (T = 1), small prefills on the CUDA cores, and shapes the
// tensor-core kernel takes in bf16 mode (head_dim 64 / 128, T >= 16, no statistics).
TEST_P(BackendOps, Attention) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const AttentionCase cases[] = {
      {1, 1, 40, 4, 4, 16, 0, false, false},  {2, 1, 300, 8, 2, 64, 0, true, false},
      {1, 13, 0, 4, 2, 12, 0, false, true},   {2, 37, 5, 6, 3, 20, 9, true, true},
      {1, 130, 0, 4, 2, 64, 0, false, false}, {2, 77, 20, 4, 4, 128, 0, true, false},
      {1, 200, 0, 8, 2, 64, 50, false, false}, {1, 64, 64, 2, 1, 128, 0, false, false}};
  for (const AttentionCase& c : cases) {
    const int64_t S = c.past + c.T, capacity = S + 3, qs = c.H * c.d + 4;
    AttentionShape sh{c.B, c.T, S, capacity, c.H, c.KV, c.KV, c.d, c.window};
    const std::vector<float> q = random_floats(rng, c.B * c.T * qs);
    const std::vector<float> k = random_floats(rng, c.B * c.KV * capacity * c.d);
    const std::vector<float> v = random_floats(rng, c.B * c.KV * capacity * c.d);
    const std::vector<int32_t> seg = random_segments(rng, c.B, capacity);
    const int64_t out_floats = c.B * c.T * c.H * c.d, stat_floats = c.B * c.H * c.T;
    std::vector<std::vector<float>> results[2];
    int i = 0;
    for (Backend* be : {cpu.get(), gpu.get()}) {
      Buffer dq = on(*be, q), dk = on(*be, k), dv = on(*be, v), ds = on(*be, seg);
      Buffer out = be->alloc_array<float>(out_floats), m = be->alloc_array<float>(stat_floats);
      Buffer l = be->alloc_array<float>(stat_floats);
      poison(*be, out);
      be->attention_forward(sh, dq.as<float>(), qs, dk.as<float>(), dv.as<float>(),
                            c.segments ? ds.as<int32_t>() : nullptr, 1.0f / std::sqrt(static_cast<float>(c.d)),
                            out.as<float>(), c.H * c.d, c.stats ? m.as<float>() : nullptr,
                            c.stats ? l.as<float>() : nullptr);
      results[i].push_back(back<float>(*be, out, out_floats));
      if (c.stats) {
        std::vector<float> mm = back<float>(*be, m, stat_floats), ll = back<float>(*be, l, stat_floats);
        for (float& x : mm) x = std::isinf(x) ? 0.0f : x;  // a row that sees nothing: -inf, on both sides
        results[i].push_back(mm);
        results[i].push_back(ll);
      }
      ++i;
    }
    const std::string what = fmt::format("attention B={} T={} past={} H={} KV={} d={} window={} segments={}", c.B, c.T,
                                         c.past, c.H, c.KV, c.d, c.window, c.segments);
    // The statistics come from the float32 path in both modes.
    for (size_t j = 0; j < results[0].size(); ++j)
      expect_close(results[1][j], results[0][j], j == 0 ? tol() : 1e-5, what + (j == 0 ? " output" : " statistics"));
  }
}

struct DiffCase {
  AttentionLayout layout;
  bool split;
  int64_t B, T, past, H, KV, d, window;
  bool segments, norm, norm_weight, stats;
};

ModelConfig diff_config(const DiffCase& c) {
  ModelConfig cfg;
  cfg.layout = c.layout;
  cfg.split_heads = c.split;
  cfg.num_attention_heads = c.H;
  cfg.num_key_value_heads = c.KV;
  cfg.head_dim = c.d;
  return cfg;
}

// Differential attention in every layout's head map (double: w = d; split, diffllama, diff-v1: w = 2d),
// with and without the norm and its weight.
TEST_P(BackendOps, DiffAttention) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  using enum AttentionLayout;
  const DiffCase cases[] = {
      {llama_differential, false, 1, 1, 30, 4, 2, 16, 0, false, true, true, false},
      {diffllama, false, 2, 1, 150, 8, 4, 64, 0, true, true, false, false},
      {llama_differential, true, 1, 11, 3, 4, 2, 12, 0, false, false, false, true},
      {diffllama, false, 2, 23, 0, 4, 2, 20, 7, true, true, false, true},
      {llama_differential, false, 1, 100, 0, 4, 2, 64, 0, false, true, true, false},
      {llama_differential, true, 2, 70, 10, 4, 2, 64, 0, true, true, true, false},
      {diffllama, false, 1, 90, 0, 8, 2, 64, 40, false, true, false, false},
      {diffllama, false, 1, 65, 0, 4, 4, 128, 0, false, true, false, false},
      {llama_differential, false, 1, 48, 16, 2, 2, 128, 0, false, false, false, false},
      {diff_v1, false, 2, 9, 5, 8, 4, 16, 0, true, true, true, true},
      {diff_v1, false, 1, 1, 40, 4, 2, 64, 0, false, true, true, false}};
  for (const DiffCase& c : cases) {
    const ModelConfig cfg = diff_config(c);
    const DiffHeadMap map = diff_head_map(cfg);
    const int64_t QH = cfg.q_proj_rows() / c.d, KH = cfg.k_proj_rows() / c.d, VH = c.KV;
    const int64_t Hd = map.n_diff_heads(), w = cfg.diff_value_width();
    const int64_t S = c.past + c.T, capacity = S + 2, qs = QH * c.d;
    const AttentionShape sh{c.B, c.T, S, capacity, QH, KH, VH, c.d, c.window};
    const std::vector<float> q = random_floats(rng, c.B * c.T * qs);
    const std::vector<float> k = random_floats(rng, c.B * KH * capacity * c.d);
    const std::vector<float> v = random_floats(rng, c.B * VH * capacity * c.d);
    const std::vector<float> nw = random_floats(rng, w);
    const std::vector<int32_t> seg = random_segments(rng, c.B, capacity);
    const int64_t out_floats = c.B * c.T * Hd * w, stat_floats = c.B * 2 * Hd * c.T, map_floats = 2 * out_floats;
    std::vector<std::vector<float>> results[2];
    int i = 0;
    for (Backend* be : {cpu.get(), gpu.get()}) {
      Buffer dq = on(*be, q), dk = on(*be, k), dv = on(*be, v), ds = on(*be, seg), dnw = on(*be, nw);
      Buffer out = be->alloc_array<float>(out_floats);
      std::vector<Buffer> st;
      for (int j = 0; j < 2; ++j) st.push_back(be->alloc_array<float>(stat_floats));
      st.push_back(be->alloc_array<float>(map_floats));
      poison(*be, out);
      DiffAttentionParams p;
      p.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
      p.lambda = 0.37f;
      p.norm = c.norm;
      p.norm_weight = c.norm_weight ? dnw.as<float>() : nullptr;
      p.norm_eps = 1e-5f;
      p.out_scale = c.layout == diffllama || c.layout == diff_v1 ? 0.8f : 1.0f;
      const DiffAttentionStats stats{st[0].as<float>(), st[1].as<float>(), st[2].as<float>()};
      be->diff_attention_forward(sh, map, p, dq.as<float>(), qs, dk.as<float>(), dv.as<float>(),
                                 c.segments ? ds.as<int32_t>() : nullptr, out.as<float>(), Hd * w,
                                 c.stats ? &stats : nullptr);
      results[i].push_back(back<float>(*be, out, out_floats));
      if (c.stats)
        for (int j = 0; j < 3; ++j) {
          std::vector<float> s = back<float>(*be, st[j], j < 2 ? stat_floats : map_floats);
          for (float& x : s) x = std::isinf(x) ? 0.0f : x;
          results[i].push_back(s);
        }
      ++i;
    }
    const std::string what =
        fmt::format("diff attention {}{} B={} T={} past={} H={} KV={} d={} window={} norm={}",
                    attention_layout_name(c.layout), c.split ? " split" : "", c.B, c.T, c.past, c.H, c.KV, c.d, c.window,
                    c.norm);
    for (size_t j = 0; j < results[0].size(); ++j)
      expect_close(results[1][j], results[0][j], j == 0 ? tol() : 1e-5, what + (j == 0 ? " output" : " statistics"));
  }
}

// diff-v2's paired combine out_i = a_2i - mix * sigmoid(z_i) a_2i+1, including z = 0 (lambda 1/2
// exactly) and large |z|.
TEST_P(BackendOps, LambdaCombine) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  for (int64_t d : {1, 8, 64, 130}) {
    const int64_t n = 5, heads = 3;
    const std::vector<float> a = random_floats(rng, n * 2 * heads * d, 2.0f);
    std::vector<float> z = random_floats(rng, n * heads, 4.0f);
    z[0] = 0.0f, z[1] = 30.0f, z[2] = -30.0f;
    std::vector<float> results[2];
    int i = 0;
    for (Backend* be : {cpu.get(), gpu.get()}) {
      Buffer da = on(*be, a), dz = on(*be, z), out = be->alloc_array<float>(n * heads * d);
      poison(*be, out);
      be->lambda_combine_forward(da.as<float>(), dz.as<float>(), 0.75f, n, heads, d, out.as<float>());
      results[i++] = back<float>(*be, out, n * heads * d);
    }
    expect_close(results[1], results[0], 1e-6, "lambda_combine d " + std::to_string(d));
  }
}

TEST_P(BackendOps, GatherNllArgmax) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  const int64_t rows = 6, V = 1001;
  std::vector<float> logits = random_floats(rng, rows * V, 4.0f);
  logits[2 * V + 7] = logits[2 * V + 900] = 100.0f;  // a tie: the lower id wins
  const std::vector<int32_t> targets = {5, kIgnoreIndex, 1000, 0, 77, 7};
  std::vector<float> gathered[2];
  std::vector<int32_t> ids[2];
  double nll[2];
  int i = 0;
  for (Backend* be : {cpu.get(), gpu.get()}) {
    Buffer d = on(*be, logits), g = be->alloc_array<float>(2 * V);
    be->gather_rows(g.as<float>(), d.as<float>(), 2, V, 3, 2);  // rows 2 and 5
    gathered[i] = back<float>(*be, g, 2 * V);
    nll[i] = be->nll_sum_host(d.as<float>(), rows, V, targets.data());
    ids[i].resize(rows);
    be->argmax_host(d.as<float>(), rows, V, ids[i].data());
    ++i;
  }
  EXPECT_EQ(gathered[0], gathered[1]);
  EXPECT_NEAR(nll[1], nll[0], 1e-5 * std::fabs(nll[0]));
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_EQ(ids[1][2], 7);
}

// The CUDA backend runs inference only: its training operations are refused by name (DeviceError),
// never run as something else.
TEST_P(BackendOps, TrainingOperationsAreRefusedByName) {
  DIFFTX_REQUIRE_CUDA(gpu, mode());
  Buffer x = gpu->alloc_array<float>(16), dx = gpu->alloc_array<float>(16);
  try {
    gpu->rmsnorm_backward(dx.as<float>(), nullptr, x.as<float>(), x.as<float>(), nullptr, 1, 16, 1e-6f);
    FAIL() << "the CUDA backend ran rmsnorm_backward";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm_backward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no training operations"), std::string::npos) << e.what();
  }
  const AdamWPiece piece{x.as<float>(), dx.as<float>(), x.as<float>(), dx.as<float>(), 16, true};
  EXPECT_THROW(gpu->adamw_update({&piece, 1}, AdamWStep{}), DeviceError);
}

INSTANTIATE_TEST_SUITE_P(Modes, BackendOps, ::testing::Values(MathMode::f32, MathMode::bf16), mode_name);

// Without a GPU (or without CUDA in the build) asking for one is a clear error, never a crash.
TEST(BackendChoice, NamesAreCheckedAndAMissingGpuIsADeviceError) {
  EXPECT_EQ(make_backend("cpu")->name(), "cpu");
  EXPECT_THROW(make_backend("tpu"), ConfigError);
  EXPECT_THROW(make_backend("cuda:x"), ConfigError);
  EXPECT_THROW(make_backend("cuda:-1"), ConfigError);
  EXPECT_THROW(make_backend("cuda:4294967296"), ConfigError);  // beyond int: not read as cuda:0
  EXPECT_THROW(make_backend("cuda:"), ConfigError);
  try {
    make_backend("cuda:64");
    FAIL() << "cuda:64 should not exist";
  } catch (const DeviceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cuda"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace difftx::test
