#include "model/model_dir.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <set>

#include "common/error.h"
#include "io/model_config.h"
#include "model/diff_checks.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

const fs::path& existing_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail<FileError>("{}: not a model directory (does not exist or is not a directory)", dir.string());
  return dir;
}

}  // namespace

ModelDir::ModelDir(const fs::path& dir)
    : config_(model_config_load(existing_dir(dir) / "config.json")), files_(dir) {}

Model model_load(const fs::path& dir) { return ModelDir(dir).load(); }

Model ModelDir::load(bool matrices_in_bf16) const {
  const fs::path& dir = path();
  const WeightFiles& checkpoint = files_;
  Model model(config_, matrices_in_bf16);

  // Check everything before converting anything.
  const auto& params = model.table().params();
  std::vector<WeightFiles::Entry> entries;
  for (const auto& p : params) {
    const WeightFiles::Entry* e = checkpoint.find(p.name);
    if (e == nullptr)
      fail<FileError>("{}: tensor \"{}\" [{}] needed by config.json ({}, {} layers) is missing from the checkpoint",
                      dir.string(), p.name, fmt::join(p.shape, ", "), model.config().model_type,
                      model.config().num_hidden_layers);
    if (e->info->shape != p.shape)
      fail<ShapeError>("{}: tensor \"{}\" has shape {} but config.json needs [{}]", e->file->path().string(), p.name,
                       e->info->shape_string(), fmt::join(p.shape, ", "));
    if (!dtype_is_loadable(e->info->dtype))
      fail<FileError>("{}: tensor \"{}\" has dtype {}, which difftx does not load (supported: F32, BF16, F16)",
                      e->file->path().string(), p.name, dtype_name(e->info->dtype));
    entries.push_back(*e);
  }
  std::vector<std::string> unused;
  for (const auto& name : checkpoint.names())
    if (model.table().find(name) == nullptr) unused.push_back(name);
  if (!unused.empty())
    spdlog::warn("{}: {} tensor(s) not used by this config, e.g. \"{}\"", dir.string(), unused.size(), unused.front());

  // NaN or inf weights would make every output NaN without an error.
  std::vector<char> finite(params.size(), 1);
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamSpec& p = params[i];
    if (matrices_in_bf16 && p.kind == ParamKind::matrix) {
      uint16_t* w = model.bf16_param(p);
      entries[i].file->load_bf16(*entries[i].info, w);
      for (uint64_t j = 0; j < p.numel; ++j)
        if ((w[j] & 0x7f80) == 0x7f80) {  // exponent all ones: infinity or NaN
          finite[i] = 0;
          break;
        }
      continue;
    }
    float* w = model.param(p.name);
    entries[i].file->load_f32(*entries[i].info, w);
    for (uint64_t j = 0; j < p.numel; ++j)
      if (!std::isfinite(w[j])) {
        finite[i] = 0;
        break;
      }
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (!finite[i])
      fail<FileError>("{}: tensor \"{}\" holds NaN or infinite values; the checkpoint is corrupt or diverged",
                      entries[i].file->path().string(), params[i].name);
  if (const std::string bad = non_finite_lambda(model); !bad.empty())
    fail<FileError>("{}: {}; every stored tensor is finite, but this lambda makes every output NaN. The checkpoint "
                    "most likely comes from a diverged training run: use an earlier checkpoint",
                    dir.string(), bad);
  return model;
}

DType ModelDir::stored_dtype() const {
  auto dtypes = files_.dtypes();
  if (dtypes.size() == 1 && dtype_is_loadable(*dtypes.begin())) return *dtypes.begin();
  return config_.dtype.value_or(DType::F32);
}

void model_save(const Model& model, const fs::path& dir, DType dtype, const WeightFilesWriteOptions& options) {
  std::vector<TensorWrite> tensors;
  for (const auto& p : model.table().params())
    tensors.push_back(TensorWrite{p.name, p.shape, model.weights().data() + p.offset, dtype});
  weight_files_write(dir, tensors, options);
  ModelConfig config = model.config();
  config.set_dtype(dtype);
  model_config_save(dir / "config.json", config);
}

}  // namespace difftx
