// The text of each token of a prompt, as the tokenizer decodes it: where each token's text lies in
// the decoded prompt (`attention-map --focus`), and the labels of the pictures' axes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace difftx {

// [begin, end) byte offsets of each token's text in tokenizer.decode(ids), whole characters (special
// tokens skipped: empty spans). Found by decoding every prefix: the text a prefix agrees on with the
// whole decode is its tokens' (a character that several tokens make up, as byte tokens do, is the
// last one's; the others' spans are empty). Memory/time O(T^2) characters: for prompts.
std::vector<std::pair<size_t, size_t>> token_spans(const Tokenizer& tokenizer, const std::vector<int32_t>& ids);

// A label per token for a picture: the token's decoded text (token_spans), so that byte-level
// vocabularies (Llama 3, Qwen, GPT-2: "ĠæĿ±äº¬") and SentencePiece ones ("▁river") read as the
// text they stand for, with its whitespace and invisible characters made visible (label_visible).
// Special tokens keep their own string ("<|begin_of_text|>"). A byte-level token that holds the
// first bytes of a character that a later token completes shows them as SentencePiece's byte
// tokens do ("ĠðĿ" of 𝔘: "␣<0xF0><0x9D>"; the completing token shows the character). Another
// token with no text of its own (a first "▁" that decoding strips) shows its vocabulary string,
// with SentencePiece's ▁ as ␣.
std::vector<std::string> token_labels(const Tokenizer& tokenizer, const std::vector<int32_t>& ids);

// `text` (valid UTF-8) with what a label could not show made visible: a space as ␣, a newline as
// ↵, a tab as ⇥ (DejaVu Sans has the three), and other control characters and invisible format
// characters (zero-width space and joiners, direction marks, soft hyphen, BOM, ...) as <U+XXXX>.
std::string label_visible(std::string_view text);

}  // namespace difftx
