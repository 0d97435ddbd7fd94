#include "model/params.h"

#include <stdexcept>

#include "common/checked_math.h"

namespace difftx {

void ParamTable::add(std::string name, std::vector<int64_t> shape, ParamInit init, int64_t layer) {
  if (index_.count(name) != 0) throw std::invalid_argument("ParamTable: duplicate parameter " + name);
  ParamSpec p;
  p.numel = checked_numel(shape).value();
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.init = init;
  switch (init) {
    case ParamInit::normal: p.kind = ParamKind::matrix; break;
    case ParamInit::zeros: p.kind = ParamKind::bias; break;
    case ParamInit::ones: p.kind = ParamKind::norm; break;
    case ParamInit::lambda: p.kind = ParamKind::lambda; break;
    case ParamInit::lambda_init: p.kind = ParamKind::constant; break;
    case ParamInit::lora_a:
    case ParamInit::lora_b: p.kind = ParamKind::adapter; break;
  }
  p.layer = layer;
  constexpr uint64_t kAlign = 16;  // floats = 64 bytes
  p.offset = (end_ + kAlign - 1) / kAlign * kAlign;
  end_ = p.offset + p.numel;
  count_ += p.numel;
  index_.emplace(p.name, params_.size());
  params_.push_back(std::move(p));
}

const ParamSpec* ParamTable::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

const ParamSpec& ParamTable::at(std::string_view name) const {
  const ParamSpec* p = find(name);
  if (p == nullptr) throw std::out_of_range("ParamTable: no parameter " + std::string(name));
  return *p;
}

}  // namespace difftx
