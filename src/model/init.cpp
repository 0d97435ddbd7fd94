#include "model/init.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string_view>

#include "model/attention/layout.h"

namespace difftx {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ull;
  }
  return h;
}

class Xoshiro256Plus {
 public:
  explicit Xoshiro256Plus(uint64_t seed) {
    for (auto& s : s_) s = splitmix64(seed);
  }
  // Uniform in (0, 1].
  double uniform() {
    const uint64_t result = s_[0] + s_[3];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = (s_[3] << 45) | (s_[3] >> 19);
    return (static_cast<double>(result >> 11) + 1.0) * 0x1.0p-53;
  }

 private:
  uint64_t s_[4];
};

constexpr uint64_t kChunk = 1 << 16;

}  // namespace

// Fills [0, n) chunk by chunk, each chunk with its own generator seeded from (seed, stream_id,
// chunk): the values do not depend on the thread count. fill(rng, begin, end) writes one chunk.
template <typename Fill>
void fill_by_chunks(uint64_t n, uint64_t seed, uint64_t stream_id, const Fill& fill) {
  const uint64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (uint64_t c = 0; c < chunks; ++c) {
    uint64_t state = seed ^ (stream_id * 0xd1b54a32d192ed03ull) ^ (c * 0x8cb92ba72f3d8dd7ull);
    Xoshiro256Plus rng(splitmix64(state));
    fill(rng, c * kChunk, std::min(n, c * kChunk + kChunk));
  }
}

void normal_fill(float* out, uint64_t n, float stddev, uint64_t seed, uint64_t stream_id) {
  fill_by_chunks(n, seed, stream_id, [&](Xoshiro256Plus& rng, uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; i += 2) {
      const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
      const double phi = 2.0 * std::numbers::pi * rng.uniform();
      out[i] = static_cast<float>(stddev * r * std::cos(phi));
      if (i + 1 < end) out[i + 1] = static_cast<float>(stddev * r * std::sin(phi));
    }
  });
}

void uniform_fill(float* out, uint64_t n, float bound, uint64_t seed, uint64_t stream_id) {
  fill_by_chunks(n, seed, stream_id, [&](Xoshiro256Plus& rng, uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) out[i] = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
  });
}

void params_init_random(const ParamTable& table, std::span<float> weights, const ModelConfig& c, uint64_t seed) {
  const float stddev = static_cast<float>(c.initializer_range);
  for (const auto& p : table.params()) {
    float* data = weights.data() + p.offset;
    switch (p.init) {
      case ParamInit::normal: normal_fill(data, p.numel, stddev, seed, fnv1a(p.name)); break;
      case ParamInit::ones: std::fill(data, data + p.numel, 1.0f); break;
      case ParamInit::zeros: std::fill(data, data + p.numel, 0.0f); break;
      case ParamInit::lambda:
        normal_fill(data, p.numel, static_cast<float>(c.lambda_std_dev), seed, fnv1a(p.name));
        break;
      case ParamInit::lambda_init: data[0] = static_cast<float>(lambda_init_for_layer(p.layer)); break;
      case ParamInit::lora_a:
        uniform_fill(data, p.numel, 1.0f / std::sqrt(static_cast<float>(p.shape.at(1))), seed, fnv1a(p.name));
        break;
      case ParamInit::lora_b: std::fill(data, data + p.numel, 0.0f); break;
    }
  }
}

void model_init_random(Model& model, uint64_t seed) {
  const ModelConfig& c = model.config();
  params_init_random(model.table(), model.weights(), c, seed);
  if (c.pad_token_id && *c.pad_token_id >= 0 && *c.pad_token_id < c.vocab_size) {
    float* row = model.param("model.embed_tokens.weight") + *c.pad_token_id * c.hidden_size;
    std::fill(row, row + c.hidden_size, 0.0f);
  }
}

}  // namespace difftx
