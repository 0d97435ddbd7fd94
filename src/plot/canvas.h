// A picture being drawn: a Cairo ARGB image surface with a white background, text helpers, and
// PNG output written crash-safely (io/atomic_file.h). Sizes are in pixels.
#pragma once

#include <cairo.h>

#include <filesystem>
#include <string>
#include <vector>

typedef struct _PangoLayout PangoLayout;  // pango/pango-layout.h

namespace difftx {

struct Rgb {
  double r = 0, g = 0, b = 0;
};

enum class Align { start, center, end };

// The ten colours of matplotlib's "tab10" cycle, so plots look as Python users expect; `i` wraps.
Rgb palette_color(size_t i);


class Canvas {
 public:
  // Throws Error when width or height lies outside [64, 16384] or Cairo cannot allocate.
  Canvas(int width, int height);
  ~Canvas();
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  cairo_t* cr() const { return cr_; }
  int width() const { return width_; }
  int height() const { return height_; }

  // Text (UTF-8) of `size` px, laid out by Pango: DejaVu Sans (else the sans-serif font fontconfig
  // prefers), and each character it lacks (CJK, emoji, ...) from an installed font that has it.
  // Anchored at (x, y) by `h` (start/center/end of the advance) and `v` (start = top, center, end =
  // bottom, from the main font's ascent and descent, so the labels of a row line up whatever their
  // letters), rotated by `angle` radians about the anchor. Text wider than `max_width` px (> 0) is
  // cut at the end with an ellipsis (…) to fit it, anchored by its shortened advance.
  void text(double x, double y, const std::string& s, double size, Align h = Align::start, Align v = Align::end,
            double angle = 0, Rgb color = {}, bool bold = false, double max_width = 0) const;
  double text_width(const std::string& s, double size, bool bold = false) const;
  // The characters of `s` (code points, in order, each once) that no installed font has: Pango
  // draws them as boxes holding their hexadecimal code. Control and format characters (U+0001,
  // U+200D, ...) and unassigned code points are left out: no font is meant to draw them.
  std::vector<char32_t> characters_without_font(const std::string& s) const;

  void set_color(Rgb c, double alpha = 1.0) const;

  // Writes the picture as PNG to `path` (a temporary file renamed into place; through a symbolic
  // link, the file it names). Throws FileError, and ConfigError when `path` exists and is not a PNG
  // file: an input given as -o by mistake, a directory, a device such as /dev/null or a FIFO is
  // never replaced by a picture.
  void save_png(const std::filesystem::path& path) const;

 private:
  int width_, height_;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
  PangoLayout* layout_ = nullptr;  // reused by every text call
  // Lays out `s` in the font of `size` and `bold`; returns the main font's ascent and descent (px).
  std::pair<double, double> set_text(const std::string& s, double size, bool bold) const;
};

// A picture's title centred at the top (y = 8), in bold; shrunk to fit the width, and cut with an
// ellipsis where even 9 px does not fit.
void draw_title(const Canvas& canvas, const std::string& title, double size);

}  // namespace difftx
