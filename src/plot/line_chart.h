// Line charts drawn on a Canvas: linear axes with round tick values, a grid, a legend.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "plot/canvas.h"

namespace difftx {

struct Series {
  std::string label;
  std::vector<double> x, y;  // equal lengths; non-finite points are skipped (the line breaks there)
  Rgb color;
  bool dashed = false;
  bool markers = false;  // a dot at every point (sparse series such as eval_loss)
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::string empty_note;  // shown in the plot area when no series has a finite point
  // The x range; NaN: the series' own. Panels that share an axis (steps of one run) set it.
  double x_min = std::numeric_limits<double>::quiet_NaN(), x_max = std::numeric_limits<double>::quiet_NaN();
};

struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
};

// Round tick values covering [lo, hi] with about `target` intervals (steps of 1, 2 or 5 x 10^k);
// lo < hi. The first tick is >= lo, the last <= hi.
std::vector<double> nice_ticks(double lo, double hi, int target);

// A tick label with as many decimals as `step` needs: fixed notation, or %g with the significant
// digits that tell `step` apart for steps below 1e-4 and values beyond 1e7. `axis_max`, the largest
// |tick| of the axis, gives every label of an axis the same notation (8000000 beside 1.4e+07 read
// as a different scale).
std::string tick_label(double value, double step, double axis_max = 0);

// The largest |t| of the ticks (axis_max above).
double largest_magnitude(const std::vector<double>& ticks);

// Draws the chart inside `area` (title, axes, ticks, grid, lines, legend).
void draw_line_chart(const Canvas& canvas, const Rect& area, const LineChart& chart);

}  // namespace difftx
