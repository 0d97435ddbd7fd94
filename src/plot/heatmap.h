// Heatmaps drawn on a Canvas: a matrix as coloured cells, row and column labels (e.g. tokens), a
// colour bar with its range.
#pragma once

#include <string>
#include <vector>

#include "plot/canvas.h"
#include "plot/line_chart.h"

namespace difftx {

enum class Colormap {
  sequential,  // white (lo) -> dark blue (hi): attention weights in [0, max]
  diverging,   // blue (-m) -> white (0) -> red (+m), m = max |value|: signed maps
};

struct Heatmap {
  std::string title;
  int64_t rows = 0, cols = 0;
  std::vector<float> values;                    // [rows, cols] row-major
  std::vector<std::string> row_labels, col_labels;  // empty, or one per row / column
  Colormap colormap = Colormap::sequential;
};

// The colour of `v` on the map's scale [lo, hi] (sequential) or [-hi, hi] (diverging).
Rgb heatmap_color(double v, double lo, double hi, Colormap map);

// Cell size and label space of a heatmap of n x n cells: cells of 4-28 px so that the matrix is
// about `target` px wide; labels every k-th token when the cells are too small to letter.
struct HeatmapLayout {
  double cell = 0, label_size = 0, margin_left = 0, margin_bottom = 0;
  int64_t label_every = 1;
};
HeatmapLayout heatmap_layout(const Canvas& canvas, const Heatmap& map, double target);

// Draws the heatmap in `area`: title on top, matrix with row labels left and column labels below
// (rotated), a colour bar on the right.
void draw_heatmap(const Canvas& canvas, const Rect& area, const Heatmap& map, const HeatmapLayout& layout);

}  // namespace difftx
