#include "plot/canvas.h"

#include <pango/pangocairo.h>

#include <algorithm>
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
  layout_ = pango_cairo_create_layout(cr_);
}

Canvas::~Canvas() {
  g_object_unref(layout_);
  cairo_destroy(cr_);
  cairo_surface_destroy(surface_);
}

void Canvas::set_color(Rgb c, double alpha) const { cairo_set_source_rgba(cr_, c.r, c.g, c.b, alpha); }

std::pair<double, double> Canvas::set_text(const std::string& s, double size, bool bold) const {
  PangoFontDescription* font = pango_font_description_from_string("DejaVu Sans");
  pango_font_description_set_weight(font, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_absolute_size(font, size * PANGO_SCALE);
  pango_cairo_update_layout(cr_, layout_);  // the current transformation (rotated labels)
  pango_layout_set_font_description(layout_, font);
  pango_layout_set_width(layout_, -1);  // no width, no ellipsis: Canvas::text's max_width sets them
  pango_layout_set_ellipsize(layout_, PANGO_ELLIPSIZE_NONE);
  if (g_utf8_validate(s.data(), static_cast<gssize>(s.size()), nullptr)) {
    pango_layout_set_text(layout_, s.data(), static_cast<int>(s.size()));
  } else {  // a token's partial UTF-8 sequence: U+FFFD in its place
    gchar* valid = g_utf8_make_valid(s.data(), static_cast<gssize>(s.size()));
    pango_layout_set_text(layout_, valid, -1);
    g_free(valid);
  }
  PangoFontMetrics* m = pango_context_get_metrics(pango_layout_get_context(layout_), font, nullptr);
  const double ascent = static_cast<double>(pango_font_metrics_get_ascent(m)) / PANGO_SCALE;
  const double descent = static_cast<double>(pango_font_metrics_get_descent(m)) / PANGO_SCALE;
  pango_font_metrics_unref(m);
  pango_font_description_free(font);
  return {ascent, descent};
}

double Canvas::text_width(const std::string& s, double size, bool bold) const {
  set_text(s, size, bold);
  PangoRectangle logical;
  pango_layout_get_extents(layout_, nullptr, &logical);
  return static_cast<double>(logical.width) / PANGO_SCALE;
}

std::vector<char32_t> Canvas::characters_without_font(const std::string& s) const {
  std::vector<char32_t> missing;
  set_text(s, 10, false);
  if (pango_layout_get_unknown_glyphs_count(layout_) == 0) return missing;
  gchar* valid = g_utf8_make_valid(s.data(), static_cast<gssize>(s.size()));
  for (const gchar* p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
    const char32_t c = g_utf8_get_char(p);
    const GUnicodeType type = g_unichar_type(c);
    if (type == G_UNICODE_CONTROL || type == G_UNICODE_FORMAT || type == G_UNICODE_UNASSIGNED ||
        type == G_UNICODE_LINE_SEPARATOR || type == G_UNICODE_PARAGRAPH_SEPARATOR)
      continue;  // no font draws these: installing one would not help
    if (std::find(missing.begin(), missing.end(), c) != missing.end()) continue;
    set_text(std::string(p, static_cast<const gchar*>(g_utf8_next_char(p))), 10, false);
    if (pango_layout_get_unknown_glyphs_count(layout_) > 0) missing.push_back(c);
  }
  g_free(valid);
  return missing;
}

void Canvas::text(double x, double y, const std::string& s, double size, Align h, Align v, double angle, Rgb color,
                  bool bold, double max_width) const {
  cairo_save(cr_);
  cairo_translate(cr_, x, y);
  cairo_rotate(cr_, angle);
  const auto [ascent, descent] = set_text(s, size, bold);
  if (max_width > 0) {  // one line, ellipsized (set_text resets both for the next call)
    pango_layout_set_width(layout_, static_cast<int>(max_width * PANGO_SCALE));
    pango_layout_set_ellipsize(layout_, PANGO_ELLIPSIZE_END);
  }
  PangoRectangle logical;
  pango_layout_get_extents(layout_, nullptr, &logical);
  const double advance = static_cast<double>(logical.width) / PANGO_SCALE;
  const double baseline = static_cast<double>(pango_layout_get_baseline(layout_)) / PANGO_SCALE;  // below the layout's top
  const double dx = h == Align::start ? 0 : h == Align::center ? -advance / 2 : -advance;
  const double dy = v == Align::start ? ascent : v == Align::center ? (ascent - descent) / 2 : -descent;
  cairo_move_to(cr_, dx, dy - baseline);  // the layout's top left: its baseline lands at dy
  set_color(color);
  pango_cairo_show_layout(cr_, layout_);
  cairo_restore(cr_);
}

void draw_title(const Canvas& canvas, const std::string& title, double size) {
  const double room = canvas.width() - 20.0;
  while (size > 9 && canvas.text_width(title, size, true) > room) size -= 1;
  canvas.text(canvas.width() / 2.0, 8, title, size, Align::center, Align::start, 0, {}, true, room);
}

namespace {

// What a path that is not a regular file is, for the refusal's message.
const char* file_kind(const std::filesystem::file_status& st) {
  using std::filesystem::file_type;
  switch (st.type()) {
    case file_type::directory: return "a directory";
    case file_type::character: return "a character device";
    case file_type::block: return "a block device";
    case file_type::fifo: return "a FIFO (named pipe)";
    case file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

}  // namespace

void Canvas::save_png(const std::filesystem::path& path) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A symbolic link keeps pointing at the picture: the file it names is the one replaced.
  const fs::path target = fs::is_symlink(fs::symlink_status(path, ec)) ? fs::weakly_canonical(path, ec) : path;
  const fs::file_status existing = fs::status(target, ec);
  if (fs::exists(existing) && !fs::is_regular_file(existing))  // /dev/null, a FIFO, ...: never replaced by a file
    fail<ConfigError>("{}: exists and is {}; refusing to replace it with a picture (choose another -o)", path.string(),
                      file_kind(existing));
  if (fs::is_regular_file(existing)) {
    static constexpr char kSignature[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
    char head[8] = {};
    std::ifstream in(target, std::ios::binary);
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
  AtomicFile out(target);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace difftx
