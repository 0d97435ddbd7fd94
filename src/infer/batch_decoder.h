// Continuous batching (the engine behind `difftx serve`): up to `slots` sequences decode together,
// each in a KV-cache slot of its own (batch 1, `context` tokens). One engine thread loops:
//   1. frees the slots of finished or cancelled sequences and gives free slots to queued requests;
//   2. prefills at most one chunk (prefill_chunk tokens) of one new prompt, so a long prompt does not
//      stall the others' decoding for longer than a chunk;
//   3. runs one decode step of every decoding sequence at once (Model::decode_rows over all slots,
//      free slots as padding rows), and hands each sequence its new token.
// A request therefore yields the same tokens alone or beside others: its prompt is prefilled in the
// same chunks, and its decode rows are computed in a pass of the same shape (every slot) whose
// products are row-independent (Model::decode_rows). Sampling uses the request's own generator.
// Requests beyond the slots wait in a bounded FIFO queue; submit() refuses one when it is full.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/sampling.h"
#include "model/model.h"

namespace difftx {

struct DecodeRequest {
  std::vector<int32_t> prompt;     // at least one id, fewer than the context
  int64_t max_new_tokens = 16;     // >= 1; the decoder caps it at what the context leaves
  SamplingOptions sampling;
  std::vector<int32_t> stop_ids;   // generation ends after one of these (it is delivered)
};

enum class FinishReason { none, stop, length, cancelled, error };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", ... (OpenAI's names)

// One request's progress, shared by the engine (writer) and the client (reader).
class Sequence {
 public:
  // Blocks until there are new ids or the sequence ended; moves the new ids into `out` (appended).
  // Returns false once the sequence ended and every id was read.
  bool next(std::vector<int32_t>& out);
  // The same, waiting at most `timeout`; returns true when it may still have more (or timed out).
  bool next_for(std::vector<int32_t>& out, std::chrono::milliseconds timeout);
  // Asks the engine to stop this sequence (a client disconnected, or a stop string was found);
  // its slot is freed at the engine's next step.
  void cancel();
  bool cancelled() const;
  FinishReason finish_reason() const;
  std::string error() const;  // for FinishReason::error
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t generated_tokens() const;

 private:
  friend class BatchDecoder;
  void deliver(int32_t id);
  void finish(FinishReason reason, std::string error = {});

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int32_t> pending_;
  int64_t generated_ = 0;
  bool cancel_requested_ = false;
  FinishReason reason_ = FinishReason::none;
  std::string error_;
  int64_t prompt_tokens_ = 0;
};

struct BatchDecoderStats {
  int64_t slots = 0, active = 0, queued = 0;
  int64_t requests_finished = 0, requests_rejected = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double generated_tokens_per_second = 0;  // over the last 10 s of decode steps
  int64_t decode_steps = 0;
};

class BatchDecoder {
 public:
  // The model must outlive the decoder. Throws ConfigError for slots, context or queue_limit < 1,
  // ShapeError when the slots' KV caches do not fit in memory. Starts the engine thread.
  BatchDecoder(const Model& model, int64_t slots, int64_t context, int64_t queue_limit, int64_t prefill_chunk = 256);
  // Stops accepting requests, lets running and queued ones finish, then joins the engine thread.
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  int64_t context() const { return context_; }
  int64_t slots() const { return static_cast<int64_t>(slots_.size()); }
  // Queues a request. Returns nullptr when the queue is full (or the decoder is draining).
  // Throws ConfigError for a request that can never run: an empty prompt, one of `context` tokens
  // or more, max_new_tokens < 1, bad sampling options.
  std::shared_ptr<Sequence> submit(DecodeRequest request);
  // Finish what is running and queued, refuse new requests; returns when the engine is idle.
  void drain();
  BatchDecoderStats stats() const;

 private:
  struct Slot;
  void loop();
  bool admit();                 // queued requests into free slots; true if any slot is busy
  void prefill_one_chunk();
  void decode_step();
  void emit(Slot& slot, int32_t id);
  void release(Slot& slot, FinishReason reason, std::string error = {});

  const Model& model_;
  int64_t context_, queue_limit_, prefill_chunk_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<float> host_logits_;
  uint64_t admissions_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  struct Queued {
    DecodeRequest request;
    std::shared_ptr<Sequence> sequence;
  };
  std::deque<Queued> queue_;
  bool draining_ = false, stop_ = false;
  BatchDecoderStats stats_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_steps_;
  std::thread engine_;
};

}  // namespace difftx
