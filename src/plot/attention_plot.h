// `difftx attention-map`'s picture: one row of panels per head of a layer: for a differential
// layout the positive map A1, the negative map A2 and their difference A1 - lambda * A2 (diverging
// colours around 0); for a standard layer its softmax map. `labels` (one per token: infer/
// token_text.h's token_labels) label both axes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/attention_maps.h"

namespace difftx {

struct AttentionPlot {
  int width = 0, height = 0;                   // pixels
  std::vector<char32_t> characters_without_font;  // in the labels, drawn as boxes (each once, in order)
};

// Writes the PNG. Throws ConfigError when the picture would exceed 16384 px in a direction (ask for
// fewer heads), FileError when it cannot be written.
AttentionPlot write_attention_plot(const AttentionMaps& maps, const std::vector<std::string>& labels,
                                   const std::string& title, const std::filesystem::path& png);

}  // namespace difftx
