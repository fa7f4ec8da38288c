// Canvas drawing, colour maps and the map/plot writers (viz.h).
#include "worker/science/viz/viz.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

#include "worker/science/io/png.h"

namespace topolab::science {
namespace {

// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
struct Glyph {
  char c;
  uint8_t rows[7];
};
const Glyph kFont[] = {
    {'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}},
    {'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}},
    {'3', {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}},
    {'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}},
    {'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
    {'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}},
    {'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}},
    {'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
    {'A', {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'B', {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}},
    {'C', {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}},
    {'D', {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}},
    {'E', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}},
    {'F', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}},
    {'G', {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}},
    {'H', {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'I', {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}},
    {'M', {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'P', {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}},
    {'Q', {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}},
    {'R', {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}},
    {'S', {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}},
    {'T', {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}},
    {'X', {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}},
    {'Z', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}},
    {':', {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'=', {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}},
    {'\'', {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'?', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
    {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'*', {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}},
};

const uint8_t* GlyphRows(char c) {
  static const std::map<char, const uint8_t*> table = [] {
    std::map<char, const uint8_t*> t;
    for (const Glyph& g : kFont) t[g.c] = g.rows;
    return t;
  }();
  auto it = table.find(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (it == table.end()) it = table.find('?');
  return it->second;
}

constexpr Rgb kBlack = {0, 0, 0};
constexpr Rgb kWhite = {255, 255, 255};
constexpr Rgb kGrey = {200, 200, 200};
constexpr Rgb kDark = {60, 60, 60};
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Compact tick label: up to 3 significant digits, no trailing zeros.
std::string FormatTick(double v) {
  if (std::fabs(v) < 1e-12) return "0";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// "Nice" tick step covering [lo, hi] with about `n` ticks.
double NiceStep(double lo, double hi, int n) {
  double raw = (hi - lo) / std::max(1, n);
  if (!(raw > 0)) return 1;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return nice * mag;
}

// Maps sheet coordinates (mm) into a square pixel area, y up.
struct SheetTransform {
  double min_x, min_y, scale;  // px per mm
  int ox, oy, size;
  int X(double x) const { return ox + static_cast<int>(std::floor((x - min_x) * scale)); }
  int Y(double y) const { return oy + size - 1 - static_cast<int>(std::floor((y - min_y) * scale)); }
};

SheetTransform FitSheet(const at::Tensor& pos, int ox, int oy, int size) {
  at::Tensor p = pos.to(at::kCPU).to(at::kDouble);
  double min_x = p.select(1, 0).min().item<double>(), max_x = p.select(1, 0).max().item<double>();
  double min_y = p.select(1, 1).min().item<double>(), max_y = p.select(1, 1).max().item<double>();
  double extent = std::max({max_x - min_x, max_y - min_y, 1e-9});
  return {min_x, min_y, (size - 1) / extent, ox, oy, size};
}

// Title, a frame around the map area, and a mm scale bar under it.
void DrawFrame(Canvas& c, const SheetTransform& t, const std::string& title) {
  c.Text(t.ox, 8, title, kBlack, 2);
  c.Rect(t.ox - 1, t.oy - 1, t.size + 2, t.size + 2, kDark);
  double extent_mm = (t.size - 1) / t.scale;
  double bar = NiceStep(0, extent_mm, 4);
  int bar_px = static_cast<int>(std::lround(bar * t.scale));
  int y = t.oy + t.size + 10;
  c.FillRect(t.ox, y, bar_px, 4, kBlack);
  c.Text(t.ox + bar_px + 8, y - 4, FormatTick(bar) + " MM", kBlack, 2);
}

void DrawOrientationLegend(Canvas& c, int cx, int cy, int r) {
  for (int y = -r; y <= r; ++y) {
    for (int x = -r; x <= r; ++x) {
      double d = std::sqrt(x * x + y * y);
      if (d > r || d < r * 0.45) continue;
      // Angle of a bar at (x, -y) on screen: orientation in [0, 180).
      double a = std::atan2(-y, x) * 180.0 / M_PI;
      if (a < 0) a += 180.0;
      if (a >= 180.0) a -= 180.0;
      c.Set(cx + x, cy + y, OrientationColour(a));
    }
  }
  c.Text(cx + r + 4, cy - 7, "0", kBlack, 2);
  c.Text(cx - 10, cy - r - 18, "90", kBlack, 2);
  c.Text(cx - r - 4 - Canvas::TextWidth("180"), cy - 7, "180", kBlack, 2);
  c.Text(cx - Canvas::TextWidth("ORIENTATION") / 2, cy + r + 8, "ORIENTATION", kBlack, 2);
}

}  // namespace

// --- Colours -------------------------------------------------------------------

Rgb HsvToRgb(double h, double s, double v) {
  h = std::fmod(h, 360.0);
  if (h < 0) h += 360.0;
  double c = v * s, x = c * (1 - std::fabs(std::fmod(h / 60.0, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  if (h < 60) r = c, g = x;
  else if (h < 120) r = x, g = c;
  else if (h < 180) g = c, b = x;
  else if (h < 240) g = x, b = c;
  else if (h < 300) r = x, b = c;
  else r = c, b = x;
  auto q = [](double u) { return static_cast<uint8_t>(std::lround(std::clamp(u, 0.0, 1.0) * 255)); };
  return {q(r + m), q(g + m), q(b + m)};
}

Rgb OrientationColour(double angle_deg) { return HsvToRgb(2.0 * angle_deg, 1.0, 1.0); }

Rgb DivergingColour(double x) {
  if (!std::isfinite(x)) return kGrey;
  x = std::clamp(x, -1.0, 1.0);
  // Blue (33,102,172) <- white -> red (178,24,43), as ColorBrewer RdBu.
  const double lo[3] = {33, 102, 172}, hi[3] = {178, 24, 43};
  Rgb out;
  for (int k = 0; k < 3; ++k) {
    double end = x < 0 ? lo[k] : hi[k];
    out[k] = static_cast<uint8_t>(std::lround(255 + (end - 255) * std::fabs(x)));
  }
  return out;
}

// --- Canvas --------------------------------------------------------------------

Canvas::Canvas(int width, int height, Rgb bg) : width_(width), height_(height) {
  rgb_.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = bg[0];
    rgb_[i + 1] = bg[1];
    rgb_[i + 2] = bg[2];
  }
}

void Canvas::Set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  rgb_[i] = c[0];
  rgb_[i + 1] = c[1];
  rgb_[i + 2] = c[2];
}

Rgb Canvas::Get(int x, int y) const {
  size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  return {rgb_[i], rgb_[i + 1], rgb_[i + 2]};
}

void Canvas::FillRect(int x, int y, int w, int h, Rgb c) {
  for (int j = y; j < y + h; ++j)
    for (int i = x; i < x + w; ++i) Set(i, j, c);
}

void Canvas::Rect(int x, int y, int w, int h, Rgb c) {
  for (int i = x; i < x + w; ++i) Set(i, y, c), Set(i, y + h - 1, c);
  for (int j = y; j < y + h; ++j) Set(x, j, c), Set(x + w - 1, j, c);
}

void Canvas::Line(int x0, int y0, int x1, int y1, Rgb c, int thickness) {
  int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
  const int h = thickness / 2;
  while (true) {
    FillRect(x0 - h, y0 - h, thickness, thickness, c);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

void Canvas::FillCircle(int cx, int cy, int r, Rgb c) {
  for (int y = -r; y <= r; ++y)
    for (int x = -r; x <= r; ++x)
      if (x * x + y * y <= r * r) Set(cx + x, cy + y, c);
}

void Canvas::Circle(int cx, int cy, int r, Rgb c, int thickness) {
  for (int y = -r; y <= r; ++y) {
    for (int x = -r; x <= r; ++x) {
      int d2 = x * x + y * y;
      if (d2 <= r * r && d2 > (r - thickness) * (r - thickness)) Set(cx + x, cy + y, c);
    }
  }
}

void Canvas::Text(int x, int y, const std::string& s, Rgb c, int scale) {
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == ' ') continue;
    const uint8_t* rows = GlyphRows(s[k]);
    int gx = x + static_cast<int>(k) * 6 * scale;
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col)
        if (rows[r] & (0x10 >> col)) FillRect(gx + col * scale, y + r * scale, scale, scale, c);
  }
}

at::Tensor Canvas::ToTensor() const {
  at::Tensor t = at::empty({height_, width_, 3}, at::kByte);
  std::copy(rgb_.begin(), rgb_.end(), t.data_ptr<uint8_t>());
  return t;
}

void Canvas::Save(const std::string& path) const { WritePngRgb(path, ToTensor()); }

// --- Maps ----------------------------------------------------------------------

void WriteOrientationScatterPng(const std::string& path, const at::Tensor& pref_deg,
                                const at::Tensor& positions, const MapStyle& style) {
  at::Tensor pref = pref_deg.to(at::kCPU).to(at::kDouble).reshape({-1}).contiguous();
  at::Tensor pos = positions.to(at::kCPU).to(at::kDouble).contiguous();
  const int s = style.size_px, margin = 20, top = 36;
  Canvas c(s + 2 * margin + 200, s + top + 40);
  SheetTransform t = FitSheet(pos, margin, top, s);
  // Dot size from unit density: about one dot per unit spacing.
  const int64_t u = pref.size(0);
  int dot = std::clamp(static_cast<int>(std::lround(s / std::sqrt(std::max<int64_t>(u, 1)) * 1.5)),
                       2, 10);
  const double* pp = pos.data_ptr<double>();
  const double* vp = pref.data_ptr<double>();
  for (int64_t i = 0; i < u; ++i) {
    if (!std::isfinite(vp[i])) continue;
    c.FillRect(t.X(pp[2 * i]) - dot / 2, t.Y(pp[2 * i + 1]) - dot / 2, dot, dot,
               OrientationColour(vp[i]));
  }
  DrawFrame(c, t, style.title.empty() ? "ORIENTATION PREFERENCE" : style.title);
  DrawOrientationLegend(c, s + margin + 100, top + 90, 55);
  c.Save(path);
}

void WriteOrientationMapPng(const std::string& path, const PinwheelResult& pw,
                            const MapStyle& style) {
  const SmoothedOrientationMap& m = pw.map;
  at::Tensor ang = m.angle_deg.to(at::kDouble).contiguous();
  const int64_t rows = m.grid.rows, cols = m.grid.cols;
  const int s = style.size_px, margin = 20, top = 36;
  Canvas c(s + 2 * margin + 200, s + top + 40);
  const double cell = static_cast<double>(s) / std::max(rows, cols);
  const double* ap = ang.data_ptr<double>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double a = ap[i * cols + j];
      int x0 = margin + static_cast<int>(std::floor(j * cell));
      int x1 = margin + static_cast<int>(std::floor((j + 1) * cell));
      // Row 0 is the smallest y: draw it at the bottom.
      int y1 = top + s - static_cast<int>(std::floor(i * cell));
      int y0 = top + s - static_cast<int>(std::floor((i + 1) * cell));
      c.FillRect(x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0),
                 std::isfinite(a) ? OrientationColour(a) : kGrey);
    }
  }
  const int r = std::clamp(static_cast<int>(cell * 1.2), 4, 9);
  for (const Pinwheel& p : pw.pinwheels) {
    double fj = (p.x_mm - m.grid.x0) / m.grid.dx + 0.5;
    double fi = (p.y_mm - m.grid.y0) / m.grid.dy + 0.5;
    int x = margin + static_cast<int>(fj * cell);
    int y = top + s - static_cast<int>(fi * cell);
    if (p.sign > 0) {
      c.FillCircle(x, y, r, kWhite);
      c.Circle(x, y, r, kBlack, 2);
    } else {
      c.FillCircle(x, y, r, kBlack);
      c.Circle(x, y, r, kWhite, 2);
    }
  }
  c.Rect(margin - 1, top - 1, s + 2, s + 2, kDark);
  c.Text(margin, 8, style.title.empty() ? "SMOOTHED ORIENTATION MAP" : style.title, kBlack, 2);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%lld PINWHEELS  DENSITY %.2f", static_cast<long long>(pw.total),
                pw.density);
  c.Text(margin, top + s + 10, buf, kBlack, 2);
  const int lx = s + margin + 100;
  DrawOrientationLegend(c, lx, top + 90, 55);
  int ly = top + 200;
  c.FillCircle(s + margin + 30, ly + 7, 7, kWhite);
  c.Circle(s + margin + 30, ly + 7, 7, kBlack, 2);
  c.Text(s + margin + 44, ly, "+ PINWHEEL", kBlack, 2);
  c.FillCircle(s + margin + 30, ly + 31, 7, kBlack);
  c.Circle(s + margin + 30, ly + 31, 7, kWhite, 2);
  c.Text(s + margin + 44, ly + 24, "- PINWHEEL", kBlack, 2);
  c.Save(path);
}

void WriteSelectivityPng(const std::string& path, const at::Tensor& t_values,
                         const at::Tensor& positions, const PatchResult* patches,
                         const MapStyle& style, double vmax) {
  at::Tensor tv = t_values.to(at::kCPU).to(at::kDouble).reshape({-1}).contiguous();
  at::Tensor pos = positions.to(at::kCPU).to(at::kDouble).contiguous();
  if (!(vmax > 0)) {
    at::Tensor a = at::nan_to_num(tv.abs(), 0);
    vmax = a.numel() > 0 ? at::quantile(a, 0.99).item<double>() : 1.0;
    if (!(vmax > 0)) vmax = 1.0;
  }
  const int s = style.size_px, margin = 20, top = 36;
  Canvas c(s + 2 * margin + 120, s + top + 40);
  SheetTransform tr = FitSheet(pos, margin, top, s);
  const int64_t u = tv.size(0);
  int dot = std::clamp(static_cast<int>(std::lround(s / std::sqrt(std::max<int64_t>(u, 1)) * 1.5)),
                       2, 12);
  // Draw weakest first so strongly selective units stay visible.
  at::Tensor order = at::argsort(at::nan_to_num(tv.abs(), 0));
  const int64_t* op = order.data_ptr<int64_t>();
  const double* pp = pos.data_ptr<double>();
  const double* vp = tv.data_ptr<double>();
  for (int64_t k = 0; k < u; ++k) {
    int64_t i = op[k];
    c.FillRect(tr.X(pp[2 * i]) - dot / 2, tr.Y(pp[2 * i + 1]) - dot / 2, dot, dot,
               DivergingColour(vp[i] / vmax));
  }
  if (patches != nullptr) {
    const SheetGrid& g = patches->grid;
    at::Tensor lab = patches->components.contiguous();
    const int64_t* lp = lab.data_ptr<int64_t>();
    std::vector<char> kept(static_cast<size_t>(g.rows * g.cols + 1), 0);
    std::vector<char> is_kept_comp(4096, 0);
    for (const Patch& p : patches->patches)
      if (p.component < 4096) is_kept_comp[p.component] = 1;
    auto in_patch = [&](int64_t i, int64_t j) {
      if (i < 0 || j < 0 || i >= g.rows || j >= g.cols) return false;
      int64_t l = lp[i * g.cols + j];
      return l >= 0 && l < 4096 && is_kept_comp[l];
    };
    // Outline = patch pixels with a 4-neighbour outside the patch.
    const int half = std::max(1, static_cast<int>(std::ceil(g.dx * tr.scale / 2)));
    for (int64_t i = 0; i < g.rows; ++i) {
      for (int64_t j = 0; j < g.cols; ++j) {
        if (!in_patch(i, j)) continue;
        if (in_patch(i - 1, j) && in_patch(i + 1, j) && in_patch(i, j - 1) && in_patch(i, j + 1))
          continue;
        int x = tr.X(g.x0 + j * g.dx), y = tr.Y(g.y0 + i * g.dy);
        c.FillRect(x - half / 2, y - half / 2, std::max(2, half), std::max(2, half), kBlack);
      }
    }
  }
  DrawFrame(c, tr, style.title.empty() ? "SELECTIVITY (T)" : style.title);
  // Vertical colour bar.
  const int bx = s + margin + 40, by = top + 20, bh = 240;
  for (int k = 0; k < bh; ++k) {
    double v = 1.0 - 2.0 * k / (bh - 1);
    c.FillRect(bx, by + k, 20, 1, DivergingColour(v));
  }
  c.Rect(bx - 1, by - 1, 22, bh + 2, kDark);
  c.Text(bx + 26, by - 6, FormatTick(vmax), kBlack, 2);
  c.Text(bx + 26, by + bh / 2 - 7, "0", kBlack, 2);
  c.Text(bx + 26, by + bh - 8, FormatTick(-vmax), kBlack, 2);
  c.Text(bx - 4, by + bh + 12, "T", kBlack, 2);
  c.Save(path);
}

// --- Line plot -----------------------------------------------------------------

void WriteLinePlotPng(const std::string& path, const std::vector<Series>& series,
                      const std::string& title, const std::string& x_label,
                      const std::string& y_label, int width, int height) {
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const Series& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  if (!std::isfinite(x_lo)) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  y_lo = std::min(y_lo, 0.0);  // curves are differences: start both axes at 0
  x_lo = std::min(x_lo, 0.0);
  if (x_hi - x_lo < 1e-12) x_hi = x_lo + 1;
  if (y_hi - y_lo < 1e-12) y_hi = y_lo + 1;
  const double ystep = NiceStep(y_lo, y_hi, 5), xstep = NiceStep(x_lo, x_hi, 6);
  y_hi = std::ceil(y_hi / ystep - 1e-9) * ystep;
  y_lo = std::floor(y_lo / ystep + 1e-9) * ystep;

  // The legend sits right of the axes, so it never hides a curve.
  int legend_w = 0;
  for (const Series& s : series) legend_w = std::max(legend_w, Canvas::TextWidth(s.name) + 44);
  Canvas c(width + legend_w, height);
  const int left = 80, right = 20 + legend_w, top = 66, bottom = 60;
  width += legend_w;
  const int pw = width - left - right, ph = height - top - bottom;
  auto px = [&](double x) { return left + static_cast<int>(std::lround((x - x_lo) / (x_hi - x_lo) * (pw - 1))); };
  auto py = [&](double y) { return top + ph - 1 - static_cast<int>(std::lround((y - y_lo) / (y_hi - y_lo) * (ph - 1))); };
  c.Text(left, 10, title, kBlack, 2);
  // Grid, ticks and labels.
  for (double y = y_lo; y <= y_hi + ystep * 1e-6; y += ystep) {
    int yy = py(y);
    c.Line(left, yy, left + pw - 1, yy, {230, 230, 230});
    c.Line(left - 5, yy, left, yy, kBlack);
    std::string lab = FormatTick(y);
    c.Text(left - 8 - Canvas::TextWidth(lab), yy - 7, lab, kBlack, 2);
  }
  for (double x = std::ceil(x_lo / xstep - 1e-9) * xstep; x <= x_hi + xstep * 1e-6; x += xstep) {
    int xx = px(x);
    c.Line(xx, top + ph - 1, xx, top + ph + 4, kBlack);
    std::string lab = FormatTick(x);
    c.Text(xx - Canvas::TextWidth(lab) / 2, top + ph + 8, lab, kBlack, 2);
  }
  c.Rect(left, top, pw, ph, kBlack);
  c.Text(left + pw / 2 - Canvas::TextWidth(x_label) / 2, height - 24, x_label, kBlack, 2);
  // Y label: written horizontally above the axis (the bitmap font has no rotation).
  c.Text(8, top - 24, y_label, kDark, 2);
  // Series.
  int legend_y = top + 4;
  for (const Series& s : series) {
    int prev_x = 0, prev_y = 0;
    bool have_prev = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
        have_prev = false;
        continue;
      }
      int x = px(s.x[i]), y = py(s.y[i]);
      if (have_prev) {
        if (s.dashed) {
          // Dashes of ~8 px along the segment.
          int steps = std::max(std::abs(x - prev_x), std::abs(y - prev_y));
          for (int k = 0; k < steps; k += 12) {
            int k2 = std::min(steps, k + 7);
            c.Line(prev_x + (x - prev_x) * k / std::max(1, steps),
                   prev_y + (y - prev_y) * k / std::max(1, steps),
                   prev_x + (x - prev_x) * k2 / std::max(1, steps),
                   prev_y + (y - prev_y) * k2 / std::max(1, steps), s.colour, 2);
          }
        } else {
          c.Line(prev_x, prev_y, x, y, s.colour, 3);
        }
      }
      c.FillCircle(x, y, 4, s.colour);
      prev_x = x, prev_y = y, have_prev = true;
    }
    // Legend entries stacked right of the axes box.
    int lx = left + pw + 14;
    c.Line(lx, legend_y + 7, lx + 24, legend_y + 7, s.colour, 3);
    c.Text(lx + 30, legend_y, s.name, kBlack, 2);
    legend_y += 20;
  }
  c.Save(path);
}

}  // namespace topolab::science
