#include "plot/attention_plot.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "common/error.h"
#include "plot/heatmap.h"

namespace difftx {

AttentionPlot write_attention_plot(const AttentionMaps& maps, const std::vector<std::string>& labels,
                                   const std::string& title, const std::filesystem::path& png) {
  const int64_t T = maps.seq_len;
  std::vector<std::vector<Heatmap>> rows;
  for (const HeadMaps& h : maps.heads) {
    auto map = [&](std::string name, const std::vector<float>& values, Colormap cm) {
      return Heatmap{fmt::format("head {}: {}", h.head, name), T, T, values, labels, labels, cm};
    };
    if (!maps.differential) {
      rows.push_back({map("softmax", h.positive, Colormap::sequential)});
      continue;
    }
    const auto [lo, hi] = std::minmax_element(h.lambda.begin(), h.lambda.end());
    const std::string lambda =
        *lo == *hi ? fmt::format("λ = {:.3f}", *lo) : fmt::format("λ per token {:.2f}-{:.2f}", *lo, *hi);
    rows.push_back({map("A1 (positive)", h.positive, Colormap::sequential),
                    map("A2 (negative)", h.negative, Colormap::sequential),
                    map("A1 - λ·A2, " + lambda, h.difference, Colormap::diverging)});
  }
  // Every panel has the same layout; measure it on a scratch canvas (text widths need one).
  const Canvas scratch(64, 64);
  const HeatmapLayout layout = heatmap_layout(scratch, rows.front().front(), 420);
  const double matrix = layout.cell * static_cast<double>(T);
  const double panel_w = layout.margin_left + matrix + 70, panel_h = 26 + matrix + layout.margin_bottom + 14;
  const double top = 36;
  const double width = panel_w * static_cast<double>(rows.front().size()) + 10;
  const double height = top + panel_h * static_cast<double>(rows.size());
  if (width > 16384 || height > 16384)
    fail<ConfigError>("attention map: {} heads of {} tokens need a {:.0f}x{:.0f} picture, more than 16384 px; ask for "
                      "fewer heads (--head) or a shorter prompt",
                      rows.size(), T, width, height);
  const int w = static_cast<int>(std::ceil(std::max(width, 300.0))), ht = static_cast<int>(std::ceil(height));
  Canvas canvas(w, std::max(ht, 64));
  draw_title(canvas, title, 15);
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t p = 0; p < rows[r].size(); ++p)
      draw_heatmap(canvas, {5 + panel_w * static_cast<double>(p), top + panel_h * static_cast<double>(r), panel_w, panel_h},
                   rows[r][p], layout);
  canvas.save_png(png);
  AttentionPlot result{w, std::max(ht, 64), {}};
  std::vector<char32_t>& missing = result.characters_without_font;
  for (const std::string& t : labels)
    for (char32_t c : canvas.characters_without_font(t))
      if (std::find(missing.begin(), missing.end(), c) == missing.end()) missing.push_back(c);
  return result;
}

}  // namespace difftx
