#include "plot/heatmap.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace difftx {

namespace {

Rgb mix(Rgb a, Rgb b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

// Value range of the map: sequential [min(0, lo), max], diverging [-m, m].
std::pair<double, double> value_range(const Heatmap& map) {
  double lo = 0, hi = 0;
  for (float v : map.values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, static_cast<double>(v));
    hi = std::max(hi, static_cast<double>(v));
  }
  if (map.colormap == Colormap::diverging) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
  if (hi <= lo) hi = lo + 1;
  return {lo, hi};
}

}  // namespace

Rgb heatmap_color(double v, double lo, double hi, Colormap map) {
  static constexpr Rgb white{1, 1, 1}, blue{0.03, 0.19, 0.42}, mid_blue{0.13, 0.40, 0.67}, red{0.70, 0.09, 0.17};
  if (!std::isfinite(v)) return {0.5, 0.5, 0.5};
  if (map == Colormap::sequential) {
    const double t = std::clamp((v - lo) / (hi - lo), 0.0, 1.0);
    return t < 0.5 ? mix(white, mid_blue, t * 2) : mix(mid_blue, blue, (t - 0.5) * 2);
  }
  const double m = std::max(std::abs(lo), std::abs(hi));
  const double t = std::clamp(v / m, -1.0, 1.0);
  return t >= 0 ? mix(white, red, t) : mix(white, mid_blue, -t);
}

HeatmapLayout heatmap_layout(const Canvas& canvas, const Heatmap& map, double target) {
  HeatmapLayout l;
  const double n = static_cast<double>(std::max(map.rows, map.cols));
  l.cell = std::clamp(std::floor(target / n), 4.0, 28.0);
  l.label_size = std::clamp(l.cell * 0.75, 8.0, 11.0);
  l.label_every = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(l.label_size * 1.2 / l.cell)));
  double widest = 0;
  for (const auto* labels : {&map.row_labels, &map.col_labels})
    for (const std::string& s : *labels) widest = std::max(widest, canvas.text_width(s, l.label_size));
  l.margin_left = std::min(widest, 110.0) + 10;
  l.margin_bottom = std::min(widest, 110.0) + 10;
  return l;
}

void draw_heatmap(const Canvas& canvas, const Rect& area, const Heatmap& map, const HeatmapLayout& l) {
  cairo_t* cr = canvas.cr();
  const auto [lo, hi] = value_range(map);
  canvas.text(area.x + l.margin_left + l.cell * static_cast<double>(map.cols) / 2, area.y + 4, map.title, 13,
              Align::center, Align::start, 0, {}, true);
  const double x0 = area.x + l.margin_left, y0 = area.y + 26;
  for (int64_t i = 0; i < map.rows; ++i)
    for (int64_t j = 0; j < map.cols; ++j) {
      canvas.set_color(heatmap_color(map.values[static_cast<size_t>(i * map.cols + j)], lo, hi, map.colormap));
      cairo_rectangle(cr, x0 + static_cast<double>(j) * l.cell, y0 + static_cast<double>(i) * l.cell, l.cell, l.cell);
      cairo_fill(cr);
    }
  canvas.set_color({0.3, 0.3, 0.3});
  cairo_set_line_width(cr, 0.8);
  cairo_rectangle(cr, x0, y0, l.cell * static_cast<double>(map.cols), l.cell * static_cast<double>(map.rows));
  cairo_stroke(cr);
  // Labels, cut with an ellipsis to their margin so that a long token does not run into the next
  // panel (and clipped to it).
  auto clipped = [&](double cx, double cy, double cw, double ch, auto&& draw) {
    cairo_save(cr);
    cairo_rectangle(cr, cx, cy, cw, ch);
    cairo_clip(cr);
    draw();
    cairo_restore(cr);
  };
  clipped(area.x, y0, l.margin_left - 3, l.cell * static_cast<double>(map.rows), [&] {
    for (int64_t i = 0; i < static_cast<int64_t>(map.row_labels.size()); i += l.label_every)
      canvas.text(x0 - 4, y0 + (static_cast<double>(i) + 0.5) * l.cell, map.row_labels[i], l.label_size, Align::end,
                  Align::center, 0, {}, false, l.margin_left - 8);
  });
  const double yb = y0 + l.cell * static_cast<double>(map.rows);
  clipped(x0, yb + 3, l.cell * static_cast<double>(map.cols), l.margin_bottom, [&] {
    for (int64_t j = 0; j < static_cast<int64_t>(map.col_labels.size()); j += l.label_every)
      canvas.text(x0 + (static_cast<double>(j) + 0.5) * l.cell, yb + 4, map.col_labels[j], l.label_size, Align::end,
                  Align::center, -M_PI / 2, {}, false, l.margin_bottom - 8);
  });
  // The colour bar: 12 px wide, as tall as the matrix, with its two ends' values.
  const double bx = x0 + l.cell * static_cast<double>(map.cols) + 10, bh = l.cell * static_cast<double>(map.rows);
  for (int k = 0; k < 64; ++k) {
    const double t = 1.0 - (k + 0.5) / 64.0;
    canvas.set_color(heatmap_color(lo + (hi - lo) * t, lo, hi, map.colormap));
    cairo_rectangle(cr, bx, y0 + bh * k / 64.0, 12, bh / 64.0 + 0.5);
    cairo_fill(cr);
  }
  canvas.text(bx + 15, y0, fmt::format("{:.3g}", hi), 10, Align::start, Align::start);
  canvas.text(bx + 15, y0 + bh, fmt::format("{:.3g}", lo), 10, Align::start, Align::end);
}

}  // namespace difftx
