#include "train/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "io/json_file.h"
#include "io/text_file.h"
#include "kernels/op_types.h"  // kIgnoreIndex
#include "tokenizer/chat_template.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

// One record of a dataset file, with where it came from for messages.
struct Record {
  unordered_json value;
  std::string where;  // "data.jsonl:12"
};

std::vector<Record> read_records(const fs::path& file, DatasetType type, const std::string& field) {
  const std::string text = read_text_file(file);
  std::vector<Record> out;
  const std::string ext = file.extension().string();
  if (ext == ".jsonl") {
    size_t pos = 0, line = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      ++line;
      std::string_view row(text.data() + pos, end - pos);
      pos = end + 1;
      if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      const std::string where = fmt::format("{}:{}", file.string(), line);
      out.push_back({json_parse_unordered(row, where), where});
    }
  } else if (ext == ".json") {
    unordered_json all = json_parse_unordered(text, file.string());
    if (!all.is_array()) fail<FileError>("{}: expected a JSON list of records", file.string());
    for (size_t i = 0; i < all.size(); ++i) out.push_back({all[i], fmt::format("{}[{}]", file.string(), i)});
  } else if (ext == ".txt") {
    if (type != DatasetType::completion)
      fail<ConfigError>("{}: a .txt file is read as one completion record per line; use type: completion",
                        file.string());
    size_t pos = 0, line = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      ++line;
      std::string row = text.substr(pos, end - pos);
      pos = end + 1;
      if (!row.empty() && row.back() == '\r') row.pop_back();
      if (row.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines carry no text
      out.push_back({unordered_json{{field, row}}, fmt::format("{}:{}", file.string(), line)});
    }
  } else {
    fail<ConfigError>("{}: unsupported dataset file (expected .jsonl, .json or .txt)", file.string());
  }
  return out;
}

std::vector<fs::path> dataset_files(const DatasetSpec& d, const fs::path& yaml) {
  std::error_code ec;
  fs::path p(d.path);
  if (fs::is_regular_file(p, ec)) return {p};
  if (fs::is_directory(p, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(p)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".jsonl" || ext == ".json" || ext == ".txt")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) fail<ConfigError>("{}: dataset directory {} holds no .jsonl, .json or .txt file", yaml.string(), d.path);
    return files;
  }
  fail<ConfigError>("{}: dataset path \"{}\" does not exist (datasets must be local files or directories)",
                    yaml.string(), d.path);
}

std::string text_field(const Record& r, const std::string& key, bool required) {
  if (!r.value.is_object()) fail<FileError>("{}: a record must be a JSON object", r.where);
  auto it = r.value.find(key);
  if (it == r.value.end() || it->is_null()) {
    if (required) fail<FileError>("{}: the record has no \"{}\" field", r.where, key);
    return "";
  }
  if (!it->is_string()) fail<FileError>("{}: field \"{}\" must be a string, got {}", r.where, key, json_type_name(*it));
  return it->get<std::string>();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

// axolotl's _tokenize: encode with special tokens, cut at max_length, append EOS when it is not
// last and there is room, strip a leading BOS when asked.
std::vector<int32_t> axolotl_tokenize(const Tokenizer& tok, const std::string& text, int64_t max_length, bool add_eos,
                                      bool strip_bos, const std::string& where, DroppedText* dropped) {
  if (text.empty()) return {};
  EncodeOptions o;
  o.add_special_tokens = true;
  o.dropped = dropped;
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, o);
  } catch (const TextError& e) {
    fail<FileError>("{}: {}", where, e.what());
  }
  if (static_cast<int64_t>(ids.size()) > max_length) ids.resize(static_cast<size_t>(max_length));
  if (ids.empty()) return ids;
  const auto eos = tok.eos_id(), bos = tok.bos_id();
  if (add_eos && eos && ids.back() != *eos && static_cast<int64_t>(ids.size()) < max_length) ids.push_back(*eos);
  if (strip_bos && bos && ids.front() == *bos) ids.erase(ids.begin());
  return ids;
}

void keep(std::vector<Sample>& out, Sample s, int64_t sequence_len, DatasetReport& report) {
  if (static_cast<int64_t>(s.ids.size()) > sequence_len) {
    ++report.dropped_long;
    return;
  }
  bool trained = false;
  for (size_t i = 1; i < s.labels.size(); ++i) trained = trained || s.labels[i] != kIgnoreIndex;
  if (!trained) {
    ++report.dropped_untrained;
    return;
  }
  report.tokens += static_cast<int64_t>(s.ids.size());
  out.push_back(std::move(s));
}

void tokenize_alpaca(const Record& r, const TrainConfig& c, const Tokenizer& tok, std::vector<Sample>& out,
                     DatasetReport& report) {
  const std::string prompt = alpaca_prompt(text_field(r, "instruction", true), text_field(r, "input", false));
  Sample s;
  s.ids = axolotl_tokenize(tok, prompt, c.sequence_len, /*add_eos=*/false, /*strip_bos=*/false, r.where,
                           &report.dropped);
  s.labels = c.train_on_inputs ? s.ids : std::vector<int32_t>(s.ids.size(), kIgnoreIndex);
  const auto response = axolotl_tokenize(tok, text_field(r, "output", true), c.sequence_len, true, true, r.where,
                                         &report.dropped);
  s.ids.insert(s.ids.end(), response.begin(), response.end());
  s.labels.insert(s.labels.end(), response.begin(), response.end());
  keep(out, std::move(s), c.sequence_len, report);
}

void tokenize_completion(const Record& r, const DatasetSpec& d, const TrainConfig& c, const Tokenizer& tok,
                         std::vector<Sample>& out, DatasetReport& report) {
  const auto ids = axolotl_tokenize(tok, text_field(r, d.field, true), 64 * c.sequence_len, true, false, r.where,
                                    &report.dropped);
  for (size_t i = 0; i < ids.size(); i += static_cast<size_t>(c.sequence_len)) {
    Sample s;
    s.ids.assign(ids.begin() + i, ids.begin() + std::min(ids.size(), i + static_cast<size_t>(c.sequence_len)));
    s.labels = s.ids;
    keep(out, std::move(s), c.sequence_len, report);
  }
}

void tokenize_chat(const Record& r, const DatasetSpec& d, const TrainConfig& c, const Tokenizer& tok, ChatFormat format,
                   std::vector<Sample>& out, DatasetReport& report) {
  if (!r.value.is_object()) fail<FileError>("{}: a record must be a JSON object", r.where);
  auto it = r.value.find(d.field_messages);
  if (it == r.value.end() || !it->is_array())
    fail<FileError>("{}: field \"{}\" must be a list of messages", r.where, d.field_messages);
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const Record m{(*it)[i], fmt::format("{}.{}[{}]", r.where, d.field_messages, i)};
    messages.push_back({text_field(m, d.message_field_role, true), text_field(m, d.message_field_content, true)});
  }
  if (messages.empty()) {
    ++report.dropped_untrained;
    return;
  }
  EncodeOptions raw;  // the rendered text holds its own special tokens
  auto encode = [&](const std::string& text, DroppedText* dropped = nullptr) {
    try {
      EncodeOptions o = raw;
      o.dropped = dropped;  // counted once, on the whole conversation (the prefixes repeat it)
      return tok.encode(text, o);
    } catch (const TextError& e) {
      fail<FileError>("{}: {}", r.where, e.what());
    }
  };
  std::string full;
  try {
    full = chat_render(format, messages, tok, false);
  } catch (const TextError& e) {
    fail<FileError>("{}: {}", r.where, e.what());
  }
  Sample s;
  s.ids = encode(full, &report.dropped);
  s.labels.assign(s.ids.size(), kIgnoreIndex);
  const bool has_generation_prompt = format == ChatFormat::chatml || format == ChatFormat::llama3;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!c.train_on_inputs && messages[i].role != "assistant") continue;
    std::span<const ChatMessage> before(messages.data(), i), upto(messages.data(), i + 1);
    const bool assistant = messages[i].role == "assistant";
    const auto start_ids = i == 0 && !assistant ? std::vector<int32_t>{}
                                                 : encode(chat_render(format, before, tok, assistant && has_generation_prompt));
    const auto end_ids = encode(chat_render(format, upto, tok, false));
    // Token boundaries of the prefixes agree with the whole text at turn boundaries (special
    // tokens end each turn); where they would not, the common prefix is used.
    auto common = [&](const std::vector<int32_t>& prefix) {
      size_t n = 0;
      while (n < prefix.size() && n < s.ids.size() && prefix[n] == s.ids[n]) ++n;
      return n;
    };
    const size_t begin = common(start_ids), end = common(end_ids);
    for (size_t t = begin; t < end; ++t) s.labels[t] = s.ids[t];
  }
  keep(out, std::move(s), c.sequence_len, report);
}

}  // namespace

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  std::string p = input.empty() ? kAlpacaPromptNoInput : kAlpacaPromptInput;
  p = replace_all(p, "{instruction}", instruction);
  return replace_all(p, "{input}", input);
}

std::vector<Sample> load_samples(const TrainConfig& c, std::span<const DatasetSpec> specs, const Tokenizer& tok,
                                 DatasetReport& report) {
  if (specs.empty()) fail<ConfigError>("{}: no datasets: add a datasets list with path and type", c.yaml_path.string());
  std::vector<Sample> out;
  for (const DatasetSpec& d : specs) {
    ChatFormat format = ChatFormat::chatml;
    if (d.type == DatasetType::chat_template) format = chat_format_from_name(c.chat_template, &tok);
    for (const fs::path& file : dataset_files(d, c.yaml_path)) {
      for (const Record& r : read_records(file, d.type, d.field)) {
        ++report.records;
        switch (d.type) {
          case DatasetType::alpaca: tokenize_alpaca(r, c, tok, out, report); break;
          case DatasetType::completion: tokenize_completion(r, d, c, tok, out, report); break;
          case DatasetType::chat_template: tokenize_chat(r, d, c, tok, format, out, report); break;
        }
      }
    }
  }
  report.samples = static_cast<int64_t>(out.size());
  if (out.empty())
    fail<ConfigError>("{}: the {} gave no usable sample ({} records; {} longer than sequence_len {}, {} without a "
                      "trained token)",
                      c.yaml_path.string(), specs.data() == c.test_datasets.data() ? "test_datasets" : "datasets",
                      report.records, report.dropped_long, c.sequence_len,
                      report.dropped_untrained);
  return out;
}

std::vector<Sample> split_validation(std::vector<Sample>& samples, double val_set_size, uint64_t seed,
                                     std::string_view config) {
  if (val_set_size <= 0) return {};
  const int64_t n = static_cast<int64_t>(samples.size());
  int64_t n_val = val_set_size < 1 ? static_cast<int64_t>(std::ceil(val_set_size * static_cast<double>(n)))
                                   : static_cast<int64_t>(val_set_size);
  if (n_val >= n)
    fail<ConfigError>("{}: val_set_size {} takes all {} samples for validation and leaves none to train on "
                      "(lower it, or give the validation samples a dataset of their own in test_datasets)",
                      config, val_set_size, n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<Sample> val, train;
  for (int64_t i = 0; i < n; ++i) (i < n_val ? val : train).push_back(std::move(samples[order[i]]));
  samples = std::move(train);
  return val;
}

}  // namespace difftx
