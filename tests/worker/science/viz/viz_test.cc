// PNG writers: files decode, colours land where the units are, markers and
// outlines are drawn. TOPOLAB_VIZ_KEEP=DIR keeps the pictures for a look.
#include "worker/science/viz/viz.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "worker/science/io/png.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;

fs::path OutDir() {
  if (const char* keep = std::getenv("TOPOLAB_VIZ_KEEP")) {
    fs::create_directories(keep);
    return keep;
  }
  fs::path d = fs::temp_directory_path() / ("viz_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

at::Tensor Grid(double step, double max) {
  at::Tensor g = at::arange(0, max + 1e-9, step, at::kDouble);
  return at::stack({g.repeat({g.size(0)}), g.repeat_interleave(g.size(0))}, 1);
}

TEST(ColourTest, HueAndDivergingEnds) {
  EXPECT_EQ(HsvToRgb(0, 1, 1), (Rgb{255, 0, 0}));
  EXPECT_EQ(HsvToRgb(120, 1, 1), (Rgb{0, 255, 0}));
  EXPECT_EQ(OrientationColour(90), (Rgb{0, 255, 255}));  // hue 180
  EXPECT_EQ(OrientationColour(0), OrientationColour(180));
  EXPECT_EQ(DivergingColour(0), (Rgb{255, 255, 255}));
  EXPECT_EQ(DivergingColour(1), (Rgb{178, 24, 43}));
  EXPECT_EQ(DivergingColour(-5), (Rgb{33, 102, 172}));
}

TEST(CanvasTest, TextDrawsGlyphPixels) {
  Canvas c(40, 20);
  c.Text(1, 1, "1", {0, 0, 0}, 1);
  // '1' has its stem in column 2 of rows 0..6.
  EXPECT_EQ(c.Get(3, 4), (Rgb{0, 0, 0}));
  EXPECT_EQ(c.Get(1, 4), (Rgb{255, 255, 255}));
}

TEST(VizTest, OrientationScatterColoursUnits) {
  at::Tensor pos = Grid(1.0, 20);
  at::Tensor pref = at::where(pos.select(1, 0) < 10, at::zeros({pos.size(0)}, at::kDouble),
                              at::full({pos.size(0)}, 90.0, at::kDouble));
  fs::path p = OutDir() / "orientation_scatter.png";
  WriteOrientationScatterPng(p.string(), pref, pos, {256, "TEST SCATTER"});
  at::Tensor img = ReadPngRgb(p.string());
  // Map area starts at (20, 36); left quarter red (0 deg), right quarter cyan.
  auto px = [&](int x, int y) {
    return Rgb{img[y][x][0].item<uint8_t>(), img[y][x][1].item<uint8_t>(),
               img[y][x][2].item<uint8_t>()};
  };
  EXPECT_EQ(px(20 + 40, 36 + 128), (Rgb{255, 0, 0}));
  EXPECT_EQ(px(20 + 220, 36 + 128), (Rgb{0, 255, 255}));
}

TEST(VizTest, OrientationMapMarksPinwheels) {
  at::Tensor pos = Grid(0.1, 10);
  at::Tensor th = at::atan2(pos.select(1, 1) - 5.13, pos.select(1, 0) - 5.21) * (90.0 / M_PI);
  PinwheelResult r = FindPinwheels(at::remainder(th, 180.0), pos);
  ASSERT_EQ(r.total, 1);
  fs::path p = OutDir() / "orientation_map.png";
  WriteOrientationMapPng(p.string(), r, {400, "PLANTED PINWHEEL"});
  at::Tensor img = ReadPngRgb(p.string());
  // The marker centre (white disc for a positive pinwheel) sits near the
  // middle of the 400-px map at (20 + 200, 36 + 200).
  int white = 0;
  for (int y = 226; y < 246; ++y)
    for (int x = 210; x < 230; ++x) white += img[y][x].sum().item<int64_t>() == 765;
  EXPECT_GT(white, 20);
}

TEST(VizTest, SelectivityMapAndLinePlotWrite) {
  at::Tensor pos = Grid(1.0, 50);
  at::Tensor dx = pos.select(1, 0) - 20, dy = pos.select(1, 1) - 25;
  at::Tensor t = at::where(dx * dx + dy * dy <= 64, at::full_like(dx, 12.0),
                           at::randn_like(dx));
  PatchResult patches = FindPatches(t, pos);
  ASSERT_EQ(patches.patches.size(), 1u);
  fs::path p = OutDir() / "selectivity.png";
  WriteSelectivityPng(p.string(), t, pos, &patches, {400, "FACES T"}, 12);
  at::Tensor img = ReadPngRgb(p.string());
  EXPECT_EQ(img.size(1), 400 + 40 + 120);
  // Centre of the blob (20, 25) mm -> strongly red.
  int x = 20 + static_cast<int>(20 * 399 / 50.0), y = 36 + 399 - static_cast<int>(25 * 399 / 50.0);
  EXPECT_GT(img[y][x][0].item<uint8_t>(), 150);
  EXPECT_LT(img[y][x][2].item<uint8_t>(), 80);

  fs::path q = OutDir() / "smoothness.png";
  Series a{"MODEL", {0.2, 0.5, 0.9, 1.3}, {10, 20, 30, 35}, {31, 119, 180}, false};
  Series b{"CHANCE", {0.2, 0.5, 0.9, 1.3}, {45, 45, 45, 45}, {120, 120, 120}, true};
  WriteLinePlotPng(q.string(), {a, b}, "OPM SMOOTHNESS", "DISTANCE (MM)", "DELTA PREF (DEG)");
  at::Tensor plot = ReadPngRgb(q.string());
  EXPECT_EQ(plot.size(0), 440);
  // Some pixels carry the series colour.
  at::Tensor blue = (plot.select(2, 0) == 31) & (plot.select(2, 1) == 119);
  EXPECT_GT(blue.sum().item<int64_t>(), 100);
}

}  // namespace
}  // namespace topolab::science
