// Tokenizers: the first byte picks what the rest is.
//   even: a tokenizer.json to load, then encode/decode a fixed text and its ids with it;
//   odd:  text encoded by the real Mistral (1 mod 4) or Llama-3 (3 mod 4) tokenizer, decoded,
//         streamed; ids are checked to round-trip where the text is valid UTF-8.
#include <cstdlib>

#include "common/error.h"
#include "fuzz/fuzz_util.h"
#include "io/json_file.h"
#include "tokenizer/decode_stream.h"
#include "tokenizer/tokenizer.h"

namespace {

const difftx::Tokenizer& fixture(const char* name) {
  static const std::filesystem::path shared = [] {
    const char* env = std::getenv("DIFFTX_SHARED");
    return std::filesystem::path(env != nullptr ? env : DIFFTX_SHARED_DIR);
  }();
  static const difftx::Tokenizer mistral = difftx::Tokenizer::load(shared / "fixtures/tokenizers/mistral");
  static const difftx::Tokenizer llama3 = difftx::Tokenizer::load(shared / "fixtures/tokenizers/llama3");
  return std::string_view(name) == "mistral" ? mistral : llama3;
}

void exercise(const difftx::Tokenizer& t, std::string_view text) {
  std::vector<int32_t> ids;
  try {
    ids = t.encode(std::string(text));
  } catch (const difftx::Error&) {  // invalid UTF-8
    return;
  }
  difftx::DecodeOptions options;
  const std::string back = t.decode(ids, options);
  difftx::DecodeStream stream(t, options);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.step(id);
  streamed += stream.finish();
  if (streamed != back) std::abort();  // streaming must agree with decoding
}

}  // namespace

int difftx_fuzz_tokenizer(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    try {
      const auto json = difftx::json_parse_unordered(rest, "tokenizer.json");
      const difftx::Tokenizer t = difftx::Tokenizer::from_json(json, nullptr, nullptr);
      exercise(t, "Hello, world! 123 \xC3\xA9t\xC3\xA9 <s> \xF0\x9F\xA6\x99  end");
    } catch (const difftx::Error&) {
    }
  } else {
    exercise(fixture(data[0] % 4 == 1 ? "mistral" : "llama3"), rest);
  }
  return 0;
}
DIFFTX_FUZZ_ENTRY(tokenizer)
