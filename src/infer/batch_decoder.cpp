#include "infer/batch_decoder.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "model/finite_logits.h"
#include "model/kv_cache.h"

namespace difftx {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::none: return "none";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
  }
  return "none";
}

// ---------------------------------------------------------------- Sequence

bool Sequence::next(std::vector<int32_t>& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !pending_.empty() || reason_ != FinishReason::none; });
  if (pending_.empty()) return false;
  out.insert(out.end(), pending_.begin(), pending_.end());
  pending_.clear();
  return true;
}

bool Sequence::next_for(std::vector<int32_t>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !pending_.empty() || reason_ != FinishReason::none; });
  if (!pending_.empty()) {
    out.insert(out.end(), pending_.begin(), pending_.end());
    pending_.clear();
    return true;
  }
  return reason_ == FinishReason::none;
}

void Sequence::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancel_requested_ = true;
}

bool Sequence::cancelled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancel_requested_;
}

FinishReason Sequence::finish_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reason_;
}

std::string Sequence::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

int64_t Sequence::generated_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generated_;
}

void Sequence::deliver(int32_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(id);
    ++generated_;
  }
  changed_.notify_all();
}

void Sequence::finish(FinishReason reason, std::string error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reason_ != FinishReason::none) return;
    reason_ = reason;
    error_ = std::move(error);
  }
  changed_.notify_all();
}

// ---------------------------------------------------------------- BatchDecoder

struct BatchDecoder::Slot {
  std::unique_ptr<KVCache> cache;
  std::shared_ptr<Sequence> sequence;  // nullptr: the slot is free
  DecodeRequest request;
  std::unique_ptr<Sampler> sampler;
  size_t prefilled = 0;   // prompt ids in the cache
  bool decoding = false;  // the prompt is in; `last` goes in next
  int32_t last = 0;
  int64_t generated = 0, max_new = 0;
  uint64_t admitted = 0;  // admission order: prompts are prefilled first come, first served
};

BatchDecoder::BatchDecoder(const Model& model, int64_t slots, int64_t context, int64_t queue_limit,
                           int64_t prefill_chunk)
    : model_(model), context_(context), queue_limit_(queue_limit), prefill_chunk_(prefill_chunk) {
  if (slots < 1) fail<ConfigError>("the number of slots (--parallel) must be >= 1, got {}", slots);
  if (context < 2) fail<ConfigError>("the context per slot (--ctx-size) must be >= 2 tokens, got {}", context);
  if (queue_limit < 1) fail<ConfigError>("the queue limit must be >= 1, got {}", queue_limit);
  if (prefill_chunk < 1) fail<ConfigError>("the prefill chunk must be >= 1 token, got {}", prefill_chunk);
  // All the slots' caches at once, checked before any is allocated: on the CPU the kernel would
  // hand out the pages lazily and kill the process when they are touched.
  const uint64_t need = KVCache::bytes(model.config(), slots, context);
  if (const uint64_t room = model.backend()->available_bytes(); room > 0 && need > room)
    fail<ConfigError>("the KV caches of {} slots x {} tokens need {:.2f} GiB; {} has {:.2f} GiB available (lower "
                      "--parallel or --ctx-size)",
                      slots, context, need / 1073741824.0, model.backend()->name(), room / 1073741824.0);
  for (int64_t i = 0; i < slots; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->cache = std::make_unique<KVCache>(model.config(), 1, context, model.backend());
    slots_.push_back(std::move(slot));
  }
  stats_.slots = slots;
  engine_ = std::thread([this] { loop(); });
}

BatchDecoder::~BatchDecoder() {
  drain();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  engine_.join();
}

std::shared_ptr<Sequence> BatchDecoder::submit(DecodeRequest request) {
  const auto P = static_cast<int64_t>(request.prompt.size());
  if (P == 0) fail<ConfigError>("the prompt has no tokens");
  if (P >= context_)
    fail<ConfigError>("the prompt has {} tokens; the context holds {} per slot (prompt + at least one new token)", P,
                      context_);
  if (request.max_new_tokens < 1) fail<ConfigError>("max_tokens must be >= 1, got {}", request.max_new_tokens);
  for (int32_t id : request.prompt)
    if (id < 0 || id >= model_.config().vocab_size)
      fail<ConfigError>("token id {} is outside the model's vocabulary [0, {})", id, model_.config().vocab_size);
  for (const auto& [id, bias] : request.sampling.logit_bias)
    if (id >= model_.config().vocab_size)
      fail<ConfigError>("logit bias: token id {} is outside the model's vocabulary [0, {})", id,
                        model_.config().vocab_size);
  Sampler check(request.sampling);
  auto sequence = std::make_shared<Sequence>();
  sequence->prompt_tokens_ = P;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_ || static_cast<int64_t>(queue_.size()) >= queue_limit_) {
      ++stats_.requests_rejected;
      return nullptr;
    }
    queue_.push_back(Queued{std::move(request), sequence});
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  wake_.notify_all();
  return sequence;
}

void BatchDecoder::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  draining_ = true;
  wake_.notify_all();
  wake_.wait(lock, [&] { return queue_.empty() && stats_.active == 0; });
}

BatchDecoderStats BatchDecoder::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  BatchDecoderStats s = stats_;
  if (recent_steps_.size() >= 2) {
    int64_t tokens = 0;
    for (size_t i = 1; i < recent_steps_.size(); ++i) tokens += recent_steps_[i].second;
    const double span =
        std::chrono::duration<double>(recent_steps_.back().first - recent_steps_.front().first).count();
    if (span > 0) s.generated_tokens_per_second = static_cast<double>(tokens) / span;
  }
  return s;
}

void BatchDecoder::loop() {
  for (;;) {
    bool busy = false;
    for (auto& slot : slots_) {
      if (!slot->sequence) continue;
      if (slot->sequence->cancelled()) release(*slot, FinishReason::cancelled);
      else busy = true;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!busy) {
        wake_.notify_all();  // drain() waits for an idle engine
        wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_
      }
    }
    try {
      admit();
      prefill_one_chunk();
      decode_step();
    } catch (const std::exception& e) {  // (out of memory, say): fail what runs, keep serving
      for (auto& slot : slots_)
        if (slot->sequence) release(*slot, FinishReason::error, e.what());
    }
  }
}

bool BatchDecoder::admit() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& slot : slots_) {
    if (slot->sequence) continue;
    while (!queue_.empty() && queue_.front().sequence->cancelled()) {  // gone before it started
      queue_.front().sequence->finish(FinishReason::cancelled);
      ++stats_.requests_finished;
      queue_.pop_front();
    }
    if (queue_.empty()) break;
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    slot->cache->clear();
    slot->request = std::move(q.request);
    slot->sequence = std::move(q.sequence);
    slot->sampler = std::make_unique<Sampler>(slot->request.sampling);
    slot->sampler->prime(slot->request.prompt);
    slot->prefilled = 0;
    slot->decoding = false;
    slot->generated = 0;
    slot->max_new = std::min(slot->request.max_new_tokens,
                             context_ - static_cast<int64_t>(slot->request.prompt.size()));
    slot->admitted = ++admissions_;
    ++stats_.active;
    stats_.prompt_tokens += static_cast<int64_t>(slot->request.prompt.size());
  }
  stats_.queued = static_cast<int64_t>(queue_.size());
  return stats_.active > 0;
}

// The id for one row of logits in the backend's memory: greedy on the backend, or (sampling,
// biases, penalties) chosen on the host. Throws NumericError (naming the position) for non-finite
// logits.
namespace {
int32_t choose(const Model& model, const float* row, Sampler& sampler, std::vector<float>& host, int64_t position) {
  Backend& be = *model.backend();
  const int64_t V = model.config().vocab_size;
  int32_t id = 0;
  if (sampler.plain_argmax()) {
    be.argmax_host(row, 1, V, &id);
    float chosen = 0;
    be.download(&chosen, row + id, sizeof(float));
    if (!std::isfinite(chosen)) fail_non_finite(model, "the logits", position);
    return id;
  }
  host.resize(static_cast<size_t>(V));
  be.download(host.data(), row, host.size() * sizeof(float));
  if (first_non_finite_row(host.data(), 1, V) >= 0) fail_non_finite(model, "the logits", position);
  return sampler.next(host.data(), V);
}
}  // namespace

void BatchDecoder::prefill_one_chunk() {
  Slot* next = nullptr;
  for (auto& slot : slots_)
    if (slot->sequence && !slot->decoding && (next == nullptr || slot->admitted < next->admitted)) next = slot.get();
  if (next == nullptr) return;
  Slot& s = *next;
  const std::vector<int32_t>& prompt = s.request.prompt;
  const size_t n = std::min(prompt.size() - s.prefilled, static_cast<size_t>(prefill_chunk_));
  try {
    TokenBatch batch;
    batch.seq_len = static_cast<int64_t>(n);
    batch.ids.assign(prompt.begin() + static_cast<std::ptrdiff_t>(s.prefilled),
                     prompt.begin() + static_cast<std::ptrdiff_t>(s.prefilled + n));
    const Buffer logits = model_.forward_on_backend(batch, s.cache.get(), LogitsMode::last);
    s.prefilled += n;
    if (s.prefilled < prompt.size()) return;
    const int32_t id = choose(model_, logits.as<const float>(), *s.sampler, host_logits_,
                              static_cast<int64_t>(prompt.size()) - 1);
    emit(s, id);
  } catch (const std::exception& e) {
    release(s, FinishReason::error, e.what());
  }
}

void BatchDecoder::decode_step() {
  const size_t rows = slots_.size();
  std::vector<int32_t> ids(rows, 0);
  std::vector<KVCache*> caches(rows, nullptr);
  bool any = false;
  for (size_t i = 0; i < rows; ++i) {
    Slot& s = *slots_[i];
    if (!s.sequence || !s.decoding) continue;
    ids[i] = s.last;
    caches[i] = s.cache.get();
    any = true;
  }
  if (!any) return;
  Buffer logits;
  try {
    logits = model_.decode_rows(ids, caches);
  } catch (const std::exception& e) {  // nothing a request sends gets here; fail the rows, keep serving
    for (size_t i = 0; i < rows; ++i)
      if (caches[i]) release(*slots_[i], FinishReason::error, e.what());
    return;
  }
  int64_t produced = 0;
  const int64_t V = model_.config().vocab_size;
  for (size_t i = 0; i < rows; ++i) {
    if (!caches[i]) continue;
    Slot& s = *slots_[i];
    try {
      const int32_t id = choose(model_, logits.as<const float>() + static_cast<int64_t>(i) * V, *s.sampler,
                                host_logits_, caches[i]->length() - 1);
      emit(s, id);
      ++produced;
    } catch (const std::exception& e) {
      release(s, FinishReason::error, e.what());
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.decode_steps;
  const auto now = std::chrono::steady_clock::now();
  recent_steps_.emplace_back(now, produced);
  while (!recent_steps_.empty() && now - recent_steps_.front().first > std::chrono::seconds(10))
    recent_steps_.pop_front();
}

void BatchDecoder::emit(Slot& s, int32_t id) {
  ++s.generated;
  s.sequence->deliver(id);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.generated_tokens;
  }
  const auto& stops = s.request.stop_ids;
  if (std::find(stops.begin(), stops.end(), id) != stops.end()) return release(s, FinishReason::stop);
  if (s.generated >= s.max_new) return release(s, FinishReason::length);
  s.last = id;
  s.decoding = true;
}

void BatchDecoder::release(Slot& s, FinishReason reason, std::string error) {
  {  // the counts first: a client that sees its sequence end sees them updated
    std::lock_guard<std::mutex> lock(mutex_);
    --stats_.active;
    ++stats_.requests_finished;
  }
  s.sequence->finish(reason, std::move(error));
  s.sequence.reset();
  s.decoding = false;
  wake_.notify_all();
}

}  // namespace difftx
