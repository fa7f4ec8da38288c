// PNG pictures of the analyses: orientation preference maps (hue = angle),
// category selectivity maps (diverging colours, patches outlined) and
// smoothness curves as line plots. Drawing is done on a small RGB Canvas
// with a built-in 5x7 bitmap font (no font files needed on workers), then
// written with io/png.h.
//
// Conventions: sheet x grows to the right, y grows *upwards* (as in a
// matplotlib scatter of positions), so the picture looks like the plots in
// the paper. Every function throws std::runtime_error naming the path if the
// file cannot be written.
#ifndef TOPOLAB_WORKER_SCIENCE_VIZ_VIZ_H_
#define TOPOLAB_WORKER_SCIENCE_VIZ_VIZ_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "worker/science/analysis/maps.h"

namespace topolab::science {

using Rgb = std::array<uint8_t, 3>;

// h in degrees [0, 360), s and v in [0, 1].
Rgb HsvToRgb(double h, double s, double v);
// Orientation colour: hue = 2 * angle (so 0 and 180 deg meet), full s/v.
Rgb OrientationColour(double angle_deg);
// Diverging blue-white-red for x in [-1, 1] (clamped); NaN -> light grey.
Rgb DivergingColour(double x);

// A w x h RGB image, (0, 0) at the top-left.
class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});
  int width() const { return width_; }
  int height() const { return height_; }
  void Set(int x, int y, Rgb c);  // ignores pixels outside
  Rgb Get(int x, int y) const;
  void FillRect(int x, int y, int w, int h, Rgb c);
  void Rect(int x, int y, int w, int h, Rgb c);  // 1-px outline
  void Line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1);
  void FillCircle(int cx, int cy, int r, Rgb c);
  void Circle(int cx, int cy, int r, Rgb c, int thickness = 1);
  // Text in the built-in 5x7 font (letters are upper-cased; unknown
  // characters draw as '?'), each glyph 6*scale px wide, 8*scale px tall.
  void Text(int x, int y, const std::string& s, Rgb c, int scale = 2);
  static int TextWidth(const std::string& s, int scale = 2) {
    return static_cast<int>(s.size()) * 6 * scale;
  }
  // [H, W, 3] uint8 tensor.
  at::Tensor ToTensor() const;
  void Save(const std::string& path) const;

 private:
  int width_, height_;
  std::vector<uint8_t> rgb_;
};

struct MapStyle {
  int size_px = 512;    // side of the square map area
  std::string title;
};

// Units drawn as small squares at their positions, coloured by preferred
// orientation, with a colour-wheel legend. NaN preferences are skipped.
// pref_deg [U], positions [U, 2] mm.
void WriteOrientationScatterPng(const std::string& path, const at::Tensor& pref_deg,
                                const at::Tensor& positions, const MapStyle& style = {});

// The smoothed orientation map (one pixel block per window, NaN = grey) with
// every pinwheel marked: positive = white disc with black ring, negative =
// black disc with white ring.
void WriteOrientationMapPng(const std::string& path, const PinwheelResult& pinwheels,
                            const MapStyle& style = {});

// Units coloured by t on a diverging scale clipped at +-vmax (vmax <= 0:
// the 99th percentile of |t|), with the pixels of every kept patch outlined
// in black (when `patches` is not null).
void WriteSelectivityPng(const std::string& path, const at::Tensor& t,
                         const at::Tensor& positions, const PatchResult* patches,
                         const MapStyle& style = {}, double vmax = 0);

struct Series {
  std::string name;
  std::vector<double> x, y;  // NaN y values break the line
  Rgb colour = {31, 119, 180};
  bool dashed = false;
};

// Line plot with axes, ticks, tick labels, axis labels and a legend.
void WriteLinePlotPng(const std::string& path, const std::vector<Series>& series,
                      const std::string& title, const std::string& x_label,
                      const std::string& y_label, int width = 640, int height = 440);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_VIZ_VIZ_H_
