#include "plot/line_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace difftx {

std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double rough = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(rough)));
  const double norm = rough / mag;
  // The 1-2-5 step nearest the rough one; a smaller one while fewer than two ticks fall inside.
  static constexpr double kSteps[] = {10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1};
  size_t i = norm < 1.5 ? 3 : norm < 3.0 ? 2 : norm < 7.0 ? 1 : 0;
  std::vector<double> ticks;
  for (; i < std::size(kSteps); ++i) {
    const double step = kSteps[i] * mag;
    ticks.clear();
    const double k0 = std::ceil(lo / step - 1e-9);
    // At most 1000 ticks: near 1e16 and beyond, k + 1 == k in double and the loop would not end.
    for (int n = 0; n < 1000 && (k0 + n) * step <= hi + step * 1e-9; ++n) {
      const double t = (k0 + n) * step;
      if (!ticks.empty() && t == ticks.back()) break;
      ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    }
    if (ticks.size() >= 2) break;
  }
  return ticks;
}

double largest_magnitude(const std::vector<double>& ticks) {
  double m = 0;
  for (double t : ticks) m = std::max(m, std::abs(t));
  return m;
}

std::string tick_label(double value, double step, double axis_max) {
  step = std::abs(step);
  if (step >= 1e-4 && std::max(std::abs(value), axis_max) < 1e7) {  // fixed notation, as many decimals as the step has
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    return fmt::format("{:.{}f}", value, decimals);
  }
  if (value == 0) return "0";
  // %g with the significant digits that tell `step` apart (trailing zeros dropped).
  const int digits = std::max(1, static_cast<int>(std::floor(std::log10(std::abs(value)) + 1e-9) -
                                                  std::floor(std::log10(step) + 1e-9)) + 1);
  return fmt::format("{:.{}g}", value, digits);
}

namespace {

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // A range with some width: a constant series gets +-10% (or +-1 around zero); y gets 5% margins.
  void widen(double margin) {
    if (!std::isfinite(hi - lo)) {  // values near the double range's ends: keep the range as it is
      return;
    }
    if (hi - lo <= std::abs(hi) * 1e-12) {
      const double d = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
      lo -= d;
      hi += d;
    } else {
      const double d = (hi - lo) * margin;
      lo -= d;
      hi += d;
    }
  }
};

void stroke_series(const Canvas& canvas, const Series& s, const Rect& plot, const Range& xr,
                   const Range& yr) {
  cairo_t* cr = canvas.cr();
  auto px = [&](double x) { return plot.x + (x - xr.lo) / (xr.hi - xr.lo) * plot.w; };
  auto py = [&](double y) { return plot.y + plot.h - (y - yr.lo) / (yr.hi - yr.lo) * plot.h; };
  canvas.set_color(s.color);
  cairo_set_line_width(cr, 1.6);
  if (s.dashed) {
    const double dash[] = {6.0, 3.0};
    cairo_set_dash(cr, dash, 2, 0);
  }
  bool pen_down = false;
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
    if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
      pen_down = false;
      continue;
    }
    if (pen_down) cairo_line_to(cr, px(s.x[i]), py(s.y[i]));
    else cairo_move_to(cr, px(s.x[i]), py(s.y[i]));
    pen_down = true;
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);
  if (s.markers || s.x.size() == 1) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      cairo_arc(cr, px(s.x[i]), py(s.y[i]), 2.8, 0, 2 * M_PI);
      cairo_fill(cr);
    }
  }
}

void draw_legend(const Canvas& canvas, const Rect& plot, const std::vector<const Series*>& shown, const Range& xr,
                 const Range& yr) {
  if (shown.empty()) return;
  cairo_t* cr = canvas.cr();
  const double size = 11, row = 15, sample = 22;
  // As many entries as fit in the frame's height; the rest are counted in a last line.
  const size_t room = static_cast<size_t>(std::max(1.0, std::floor((plot.h - 20) / row)));
  const size_t listed = shown.size() <= room ? shown.size() : room - 1;
  const std::string more = listed < shown.size() ? fmt::format("... and {} more", shown.size() - listed) : "";
  double w = canvas.text_width(more, size);
  for (size_t i = 0; i < listed; ++i) w = std::max(w, canvas.text_width(shown[i]->label, size));
  const double box_w = w + sample + 18, box_h = row * static_cast<double>(listed + (more.empty() ? 0 : 1)) + 8;
  // The corner whose box covers the fewest points (matplotlib's loc="best", over the corners).
  auto px = [&](double x) { return plot.x + (x - xr.lo) / (xr.hi - xr.lo) * plot.w; };
  auto py = [&](double y) { return plot.y + plot.h - (y - yr.lo) / (yr.hi - yr.lo) * plot.h; };
  const Rect corners[] = {{plot.x + plot.w - box_w - 6, plot.y + 6, box_w, box_h},
                          {plot.x + 6, plot.y + 6, box_w, box_h},
                          {plot.x + plot.w - box_w - 6, plot.y + plot.h - box_h - 6, box_w, box_h},
                          {plot.x + 6, plot.y + plot.h - box_h - 6, box_w, box_h}};
  size_t best = 0;
  int64_t fewest = -1;
  for (size_t c = 0; c < std::size(corners); ++c) {
    const Rect& r = corners[c];
    int64_t covered = 0;
    for (const Series* s : shown)
      for (size_t i = 0; i + 1 < s->x.size() && i + 1 < s->y.size(); ++i)
        for (double t : {0.0, 0.25, 0.5, 0.75}) {  // points along each segment, so a line through the box counts
          const double x = px(s->x[i] + t * (s->x[i + 1] - s->x[i])), y = py(s->y[i] + t * (s->y[i + 1] - s->y[i]));
          covered += x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h;
        }
    if (fewest < 0 || covered < fewest) fewest = covered, best = c;
  }
  const double x0 = corners[best].x, y0 = corners[best].y;
  canvas.set_color({1, 1, 1}, 0.85);
  cairo_rectangle(cr, x0, y0, box_w, box_h);
  cairo_fill_preserve(cr);
  canvas.set_color({0.75, 0.75, 0.75});
  cairo_set_line_width(cr, 0.8);
  cairo_stroke(cr);
  if (!more.empty())
    canvas.text(x0 + 12 + sample, y0 + 4 + row * (static_cast<double>(listed) + 0.5), more, size, Align::start,
                Align::center);
  for (size_t i = 0; i < listed; ++i) {
    const Series& s = *shown[i];
    const double y = y0 + 4 + row * (static_cast<double>(i) + 0.5);
    canvas.set_color(s.color);
    cairo_set_line_width(cr, 1.6);
    if (s.dashed) {
      const double dash[] = {6.0, 3.0};
      cairo_set_dash(cr, dash, 2, 0);
    }
    cairo_move_to(cr, x0 + 6, y);
    cairo_line_to(cr, x0 + 6 + sample, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    if (s.markers) {
      cairo_arc(cr, x0 + 6 + sample / 2, y, 2.8, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    canvas.text(x0 + 12 + sample, y, s.label, size, Align::start, Align::center);
  }
}

}  // namespace

void draw_line_chart(const Canvas& canvas, const Rect& area, const LineChart& chart) {
  cairo_t* cr = canvas.cr();
  canvas.text(area.x + area.w / 2, area.y + 8, chart.title, 14, Align::center, Align::start, 0, {}, true);
  Range xr, yr;
  std::vector<const Series*> shown;
  for (const Series& s : chart.series) {
    bool any = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xr.add(s.x[i]);
        yr.add(s.y[i]);
        any = true;
      }
    if (any) shown.push_back(&s);
  }
  const double top = 30, bottom = 48, right = 16;
  const double plot_h = area.h - top - bottom;
  std::vector<double> yt;
  double ystep = 1, left = 72;
  if (!shown.empty()) {
    if (std::isfinite(chart.x_min) && std::isfinite(chart.x_max)) xr = {chart.x_min, chart.x_max};
    xr.widen(0.01);  // the end points' markers stay inside the frame
    yr.widen(0.05);
    yt = nice_ticks(yr.lo, yr.hi, std::max(2, static_cast<int>(plot_h / 50)));
    ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
    double widest = 0;  // the y tick labels decide the left margin, so they never run into the axis title
    for (double t : yt) widest = std::max(widest, canvas.text_width(tick_label(t, ystep, largest_magnitude(yt)), 11));
    left = std::max(56.0, widest + 34);
  }
  const Rect plot{area.x + left, area.y + top, area.w - left - right, plot_h};
  // The frame.
  canvas.set_color({0.2, 0.2, 0.2});
  cairo_set_line_width(cr, 1.0);
  cairo_rectangle(cr, plot.x + 0.5, plot.y + 0.5, plot.w, plot.h);
  cairo_stroke(cr);
  canvas.text(plot.x + plot.w / 2, area.y + area.h - 6, chart.x_label, 12, Align::center, Align::end);
  canvas.text(area.x + 14, plot.y + plot.h / 2, chart.y_label, 12, Align::center, Align::center, -M_PI / 2);
  if (shown.empty()) {
    canvas.text(plot.x + plot.w / 2, plot.y + plot.h / 2, chart.empty_note, 12, Align::center, Align::center, 0,
                {0.4, 0.4, 0.4});
    return;
  }
  // Ticks and grid.
  auto px = [&](double x) { return plot.x + (x - xr.lo) / (xr.hi - xr.lo) * plot.w; };
  auto py = [&](double y) { return plot.y + plot.h - (y - yr.lo) / (yr.hi - yr.lo) * plot.h; };
  const auto xt = nice_ticks(xr.lo, xr.hi, std::max(2, static_cast<int>(plot.w / 90)));
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  cairo_set_line_width(cr, 0.6);
  for (double t : xt) {
    canvas.set_color({0.88, 0.88, 0.88});
    cairo_move_to(cr, std::round(px(t)) + 0.5, plot.y);
    cairo_line_to(cr, std::round(px(t)) + 0.5, plot.y + plot.h);
    cairo_stroke(cr);
    canvas.text(px(t), plot.y + plot.h + 5, tick_label(t, xstep, largest_magnitude(xt)), 11, Align::center, Align::start);
  }
  for (double t : yt) {
    canvas.set_color({0.88, 0.88, 0.88});
    cairo_move_to(cr, plot.x, std::round(py(t)) + 0.5);
    cairo_line_to(cr, plot.x + plot.w, std::round(py(t)) + 0.5);
    cairo_stroke(cr);
    canvas.text(plot.x - 5, py(t), tick_label(t, ystep, largest_magnitude(yt)), 11, Align::end, Align::center);
  }
  cairo_save(cr);
  cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
  cairo_clip(cr);
  for (const Series* s : shown) stroke_series(canvas, *s, plot, xr, yr);
  cairo_restore(cr);
  draw_legend(canvas, plot, shown, xr, yr);
}

}  // namespace difftx
