// Canvas text through Pango: each character comes from an installed font that has it (CJK from
// scripts/deps.sh's fonts-droid-fallback, the rest from DejaVu Sans), characters no font has are
// named, and a label that is not valid UTF-8 neither throws nor stops later text from drawing.
#include <gtest/gtest.h>

#include <cairo.h>

#include <cmath>
#include <cstdint>

#include "plot/canvas.h"

namespace difftx {
namespace {

// Pixels that are not white inside [x0, x1) x [y0, y1) of the canvas.
int64_t ink(const Canvas& c, int x0, int y0, int x1, int y1) {
  cairo_surface_t* s = cairo_get_target(c.cr());
  cairo_surface_flush(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  int64_t n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      n += (*reinterpret_cast<const uint32_t*>(data + y * stride + 4 * x) & 0xFFFFFF) != 0xFFFFFF;
  return n;
}

const char* kCjk = "東京の首都";  // Japanese (kanji and kana)

TEST(CanvasTextTest, CjkCharactersHaveAFont) {
  const Canvas c(200, 64);
  EXPECT_TRUE(c.characters_without_font(kCjk).empty())
      << "no installed font has these CJK characters (scripts/deps.sh installs fonts-droid-fallback)";
  EXPECT_TRUE(c.characters_without_font("Hello, world: λ·A2 — 0.25").empty());
  // Full-width CJK: five characters advance about five times one, and each leaves ink.
  const double one = c.text_width("東", 20), five = c.text_width(kCjk, 20);
  EXPECT_GT(one, 10.0);
  EXPECT_NEAR(five, 5 * one, 1.0);
  c.text(10, 10, kCjk, 20, Align::start, Align::start);
  for (int k = 0; k < 5; ++k) {
    const int x0 = 10 + static_cast<int>(k * one);
    EXPECT_GT(ink(c, x0, 10, x0 + static_cast<int>(one), 40), 20) << "character " << k;
  }
}

TEST(CanvasTextTest, TextWiderThanItsRoomIsCutWithAnEllipsis) {
  const Canvas c(400, 120);
  const std::string long_token(60, 'W');
  ASSERT_GT(c.text_width(long_token, 11), 300.0);
  // Anchored at its end (a row label): without a width it runs out to the left edge; with 80 px it
  // stays within them, and what is drawn ends with the ellipsis (a low dot: ink near the baseline
  // only, in the last few pixels).
  c.text(390, 10, long_token, 11, Align::end, Align::start);
  EXPECT_GT(ink(c, 0, 10, 300, 30), 0);
  c.text(390, 60, long_token, 11, Align::end, Align::start, 0, {}, false, 80);
  EXPECT_EQ(ink(c, 0, 55, 308, 85), 0) << "ink left of the 80 px room";
  EXPECT_GT(ink(c, 310, 55, 380, 85), 100) << "the start of the token is drawn";
  EXPECT_EQ(ink(c, 383, 55, 391, 67), 0) << "the last characters are the ellipsis's low dots, not a W";
  EXPECT_GT(ink(c, 380, 67, 391, 75), 0) << "the ellipsis";
  // Text that fits is drawn as it is.
  const Canvas d(200, 64), e(200, 64);
  d.text(10, 10, "short", 11, Align::start, Align::start);
  e.text(10, 10, "short", 11, Align::start, Align::start, 0, {}, false, 80);
  EXPECT_EQ(ink(d, 0, 0, 200, 64), ink(e, 0, 0, 200, 64));
}

TEST(CanvasTextTest, CharactersNoFontHasAreNamedOnceInOrder) {
  const Canvas c(100, 64);
  // U+F0B7 and U+F0A7: the Symbol font's bullets in the private use area (PDF text brings them;
  // Mistral's vocabulary has them as tokens), which no general font covers.
  const std::vector<char32_t> missing = c.characters_without_font("a\uf0b7 b\uf0a7\uf0b7 東");
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0], U'\uf0b7');
  EXPECT_EQ(missing[1], U'\uf0a7');
  // Control and format characters and an unassigned code point: drawn as boxes or not at all, but
  // no font would help, so they are not named.
  EXPECT_TRUE(c.characters_without_font("a\x01b\x7f\u200d\u200e\ufeff\u0378").empty());
}

TEST(CanvasTextTest, InvalidUtf8IsDrawnAsReplacementAndLaterTextStillDraws) {
  const Canvas c(200, 64);
  const std::string cut = std::string("ab") + "\xE6\x9D";  // a character cut after two of its three bytes
  EXPECT_GT(c.text_width(cut, 12), c.text_width("ab", 12));
  EXPECT_NO_THROW(c.text(5, 5, cut, 12, Align::start, Align::start));
  c.text(100, 30, "X", 20, Align::start, Align::start);
  EXPECT_GT(ink(c, 100, 30, 130, 60), 20) << "the canvas still draws after an invalid label";
  EXPECT_EQ(cairo_status(c.cr()), CAIRO_STATUS_SUCCESS);
}

TEST(CanvasTextTest, AnchorsPlaceTheTextAroundThePoint) {
  const Canvas c(300, 100);
  const double w = c.text_width("MMMM", 20);
  // Align::end at x = 150: the ink ends at 150 and starts about w before it.
  c.text(150, 50, "MMMM", 20, Align::end, Align::center);
  EXPECT_EQ(ink(c, 152, 0, 300, 100), 0);
  EXPECT_GT(ink(c, static_cast<int>(150 - w), 40, 150, 60), 100);
  EXPECT_EQ(ink(c, 0, 0, static_cast<int>(150 - w - 3), 100), 0);
  // Align::center vertically: the capitals straddle y = 50.
  EXPECT_GT(ink(c, 0, 40, 300, 50), 50);
  EXPECT_GT(ink(c, 0, 50, 300, 60), 50);
  EXPECT_EQ(ink(c, 0, 0, 300, 30), 0);
  EXPECT_EQ(ink(c, 0, 70, 300, 100), 0);
}

}  // namespace
}  // namespace difftx
