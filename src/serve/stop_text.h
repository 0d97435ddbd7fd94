// OpenAI's `stop` strings over streamed text: generation ends at the first occurrence of any of
// them, which is not part of the output. While the text so far ends with the beginning of a stop
// string, that part is held back (it may turn out to be the stop string), so streamed pieces
// concatenate to exactly the non-streamed text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace difftx {

class StopText {
 public:
  explicit StopText(std::vector<std::string> stops);  // empty strings are ignored
  // Adds generated text; returns what can be shown now. After a stop string is found, returns
  // the text before it, and stopped() is true; later calls return "".
  std::string add(std::string_view piece);
  // The text held back at the end of generation (no stop string came).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace difftx
