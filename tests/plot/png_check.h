// Reading a PNG back for the picture tests (through Cairo's PNG reader): its size and how many
// pixels are not background, and how many are close to a colour.
#pragma once

#include <cairo.h>

#include <cmath>
#include <cstdint>
#include <filesystem>

#include "plot/canvas.h"

namespace difftx::test {

struct PngStats {
  int width = 0, height = 0;
  int64_t non_white = 0;  // pixels that differ from white
  int64_t near = 0;       // pixels within 0.06 (per channel) of the colour asked for
  bool ok = false;        // it decoded as a PNG
};

inline PngStats png_stats(const std::filesystem::path& file, Rgb colour = {-1, -1, -1}) {
  PngStats s;
  cairo_surface_t* img = cairo_image_surface_create_from_png(file.c_str());
  if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
    s.ok = true;
    s.width = cairo_image_surface_get_width(img);
    s.height = cairo_image_surface_get_height(img);
    const int stride = cairo_image_surface_get_stride(img);
    const unsigned char* data = cairo_image_surface_get_data(img);
    for (int y = 0; y < s.height; ++y)
      for (int x = 0; x < s.width; ++x) {
        const uint32_t p = *reinterpret_cast<const uint32_t*>(data + y * stride + 4 * x);
        const double r = ((p >> 16) & 0xFF) / 255.0, g = ((p >> 8) & 0xFF) / 255.0, b = (p & 0xFF) / 255.0;
        if ((p & 0xFFFFFF) != 0xFFFFFF) ++s.non_white;
        if (std::abs(r - colour.r) < 0.06 && std::abs(g - colour.g) < 0.06 && std::abs(b - colour.b) < 0.06) ++s.near;
      }
  }
  cairo_surface_destroy(img);
  return s;
}

}  // namespace difftx::test
