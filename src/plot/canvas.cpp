#include "plot/canvas.h"

#include <array>
#include <cstring>
#include <fstream>
#include <string>

#include "common/error.h"
#include "io/atomic_file.h"

namespace difftx {

Rgb palette_color(size_t i) {
  static constexpr std::array<Rgb, 10> tab10 = {{{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                                                 {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                                                 {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                                                 {0.090, 0.745, 0.812}}};
  return tab10[i % tab10.size()];
}

Canvas::Canvas(int width, int height) : width_(width), height_(height) {
  if (width < 64 || height < 64 || width > 16384 || height > 16384)
    fail<ConfigError>("picture size {}x{}: width and height must lie in [64, 16384] pixels", width, height);
  surface_ = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height);
  if (cairo_surface_status(surface_) != CAIRO_STATUS_SUCCESS) {
    const std::string why = cairo_status_to_string(cairo_surface_status(surface_));
    cairo_surface_destroy(surface_);
    fail<Error>("cannot create a {}x{} picture: {}", width, height, why);
  }
  cr_ = cairo_create(surface_);
  cairo_set_source_rgb(cr_, 1, 1, 1);
  cairo_paint(cr_);
}

Canvas::~Canvas() {
  cairo_destroy(cr_);
  cairo_surface_destroy(surface_);
}

void Canvas::set_color(Rgb c, double alpha) const { cairo_set_source_rgba(cr_, c.r, c.g, c.b, alpha); }

namespace {

void select_font(cairo_t* cr, double size, bool bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

}  // namespace

double Canvas::text_width(const std::string& s, double size, bool bold) const {
  select_font(cr_, size, bold);
  cairo_text_extents_t e;
  cairo_text_extents(cr_, s.c_str(), &e);
  return e.x_advance;
}

void Canvas::text(double x, double y, const std::string& s, double size, Align h, Align v, double angle, Rgb color,
                  bool bold) const {
  select_font(cr_, size, bold);
  cairo_text_extents_t e;
  cairo_text_extents(cr_, s.c_str(), &e);
  cairo_font_extents_t f;
  cairo_font_extents(cr_, &f);
  const double dx = h == Align::start ? 0 : h == Align::center ? -e.x_advance / 2 : -e.x_advance;
  // Vertical anchors from the font's ascent/descent, so labels of one row line up whatever their letters.
  const double dy = v == Align::start ? f.ascent : v == Align::center ? (f.ascent - f.descent) / 2 : -f.descent;
  cairo_save(cr_);
  cairo_translate(cr_, x, y);
  cairo_rotate(cr_, angle);
  cairo_move_to(cr_, dx, dy);
  set_color(color);
  cairo_show_text(cr_, s.c_str());
  cairo_restore(cr_);
}

void draw_title(const Canvas& canvas, const std::string& title, double size) {
  const double room = canvas.width() - 20.0;
  while (size > 9 && canvas.text_width(title, size, true) > room) size -= 1;
  std::string shown = title;
  while (shown.size() > 1 && canvas.text_width(shown + "…", size, true) > room) {
    shown.pop_back();
    while (!shown.empty() && (static_cast<unsigned char>(shown.back()) & 0xC0) == 0x80) shown.pop_back();  // whole UTF-8 characters
    if (!shown.empty() && static_cast<unsigned char>(shown.back()) >= 0xC0) shown.pop_back();
  }
  if (shown != title) shown += "…";
  canvas.text(canvas.width() / 2.0, 8, shown, size, Align::center, Align::start, 0, {}, true);
}

void Canvas::save_png(const std::filesystem::path& path) const {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    static constexpr char kSignature[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
    char head[8] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(head, 8);
    if (in.gcount() != 8 || std::memcmp(head, kSignature, 8) != 0)
      fail<ConfigError>("{}: exists and is not a PNG; refusing to replace it with a picture (choose another -o)",
                        path.string());
  }
  cairo_surface_flush(surface_);
  std::string bytes;
  auto sink = [](void* closure, const unsigned char* data, unsigned int length) {
    static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
    return CAIRO_STATUS_SUCCESS;
  };
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface_, sink, &bytes);
  if (st != CAIRO_STATUS_SUCCESS) fail<FileError>("{}: cannot encode the PNG: {}", path.string(), cairo_status_to_string(st));
  AtomicFile out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace difftx
