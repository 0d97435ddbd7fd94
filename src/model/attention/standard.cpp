// Standard softmax attention of a Llama-family model (spec §1): no tensors of its own.
#include <stdexcept>

#include "model/attention/modules.h"

namespace difftx {

namespace {

class Standard final : public AttentionLayoutModule {
 public:
  AttentionLayout layout() const override { return AttentionLayout::standard; }
  bool differential() const override { return false; }
  void add_layer_params(ParamTable&, const ModelConfig&, const std::string&, int64_t) const override {}
  DiffHeadMap head_map(const ModelConfig&) const override {
    throw std::logic_error("standard attention has no differential head map");
  }
  double lambda_init(const float*, int64_t) const override {
    throw std::logic_error("standard attention has no lambda");
  }
  Output output(const ModelConfig&, int64_t) const override { return {}; }
  void check_conversion(const ModelConfig&, const ConvertOptions&) const override {
    throw std::logic_error("standard attention is not a conversion target");
  }
  void converted_config(ordered_json&, const ConvertOptions&) const override {
    throw std::logic_error("standard attention is not a conversion target");
  }
  LambdaMetrics lambda_metrics(const ModelConfig&, const LayerWeights&, int64_t, float,
                               const ForwardTrace*) const override {
    throw std::logic_error("standard attention has no lambda");
  }
  std::string summary(const ModelConfig&) const override { return {}; }
};

}  // namespace

const AttentionLayoutModule& standard_attention() {
  static const Standard module;
  return module;
}

}  // namespace difftx
