// Image corruptions in tensor code (Tiny-ImageNet-C severities).
#include "worker/science/families/corruptions.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "worker/science/viz/viz.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

at::Tensor Clip(const at::Tensor& x) { return x.clamp(0.0, 1.0); }

// Depthwise correlation of [N, C, H, W] with one 2-D kernel, edges handled by
// `pad_mode` ("replicate" or "reflect").
at::Tensor Filter2d(const at::Tensor& x, const at::Tensor& kernel, const std::string& pad_mode) {
  const int64_t kh = kernel.size(0), kw = kernel.size(1), c = x.size(1);
  const int64_t pt = kh / 2, pb = kh - 1 - kh / 2, pl = kw / 2, pr = kw - 1 - kw / 2;
  at::Tensor p = pad_mode == "reflect" ? at::reflection_pad2d(x, {pl, pr, pt, pb})
                                       : at::replication_pad2d(x, {pl, pr, pt, pb});
  at::Tensor w = kernel.to(x.dtype()).view({1, 1, kh, kw}).expand({c, 1, kh, kw}).contiguous();
  const std::vector<int64_t> one = {1, 1}, zero = {0, 0};
  return at::conv2d(p, w, at::Tensor(), at::IntArrayRef(one), at::IntArrayRef(zero), at::IntArrayRef(one), c);
}

at::Tensor Gaussian1d(double sigma, int64_t radius) {
  at::Tensor t = at::arange(-radius, radius + 1, at::kDouble);
  at::Tensor g = at::exp(-t * t / (2 * sigma * sigma));
  return g / g.sum();
}

// scipy.ndimage.gaussian_filter-like smoothing of [N, 1, H, W] with truncate.
at::Tensor GaussianSmooth(const at::Tensor& x, double sigma, double truncate, const std::string& pad) {
  if (sigma <= 0) return x;
  const int64_t r = static_cast<int64_t>(truncate * sigma + 0.5);
  if (r == 0) return x;
  at::Tensor g = Gaussian1d(sigma, r);
  at::Tensor y = Filter2d(x, g.view({1, -1}), pad);
  return Filter2d(y, g.view({-1, 1}), pad);
}

// Centre crop of side ceil(h/z), bilinear zoom by z (corners aligned, as
// scipy's order-1 zoom), trimmed back to h. x: [N, C, h, h].
at::Tensor ClippedZoom(const at::Tensor& x, double z) {
  const int64_t h = x.size(2);
  const int64_t ch = static_cast<int64_t>(std::ceil(h / z));
  const int64_t top = (h - ch) / 2;
  at::Tensor crop = x.narrow(2, top, ch).narrow(3, top, ch);
  const int64_t out = static_cast<int64_t>(std::lround(ch * z));
  at::Tensor zoomed = at::upsample_bilinear2d(crop, {out, out}, true);
  const int64_t trim = (out - h) / 2;
  return zoomed.narrow(2, trim, h).narrow(3, trim, h);
}

// ImageMagick-style motion blur of [C, H, W]: a one-sided Gaussian-weighted
// sum of copies shifted along `angle_deg`, edges replicated.
at::Tensor MotionBlur(const at::Tensor& x, int64_t radius, double sigma, double angle_deg) {
  const int64_t width = 2 * radius + 1, h = x.size(1), w = x.size(2);
  at::Tensor k = at::exp(-at::pow(at::arange(width, at::kDouble), 2) / (2 * sigma * sigma));
  k = k / k.sum();
  const double sy = std::sin(angle_deg * kPi / 180), sx = std::cos(angle_deg * kPi / 180);
  at::Tensor out = at::zeros_like(x);
  for (int64_t i = 0; i < width; ++i) {
    const int64_t dy = -static_cast<int64_t>(std::ceil(i * sy - 0.5));
    const int64_t dx = -static_cast<int64_t>(std::ceil(i * sx - 0.5));
    if (std::abs(dy) >= h || std::abs(dx) >= w) break;
    at::Tensor rows = at::clamp(at::arange(h, at::kLong) - dy, 0, h - 1);
    at::Tensor cols = at::clamp(at::arange(w, at::kLong) - dx, 0, w - 1);
    out = out + k[i].item<double>() * x.index_select(1, rows).index_select(2, cols);
  }
  return out;
}

double Uniform(at::Generator& gen, double lo, double hi) {
  return at::empty({1}, at::kDouble).uniform_(lo, hi, gen).item<double>();
}

// Diamond-square plasma fractal in [0, 1] (Hendrycks' plasma_fractal).
at::Tensor PlasmaFractal(int64_t mapsize, double wibbledecay, at::Generator& gen) {
  at::Tensor m = at::zeros({mapsize, mapsize}, at::kDouble);
  int64_t step = mapsize;
  double wibble = 100;
  auto wibbled_mean = [&](const at::Tensor& a) {
    return a / 4 + wibble * at::empty(a.sizes(), at::kDouble).uniform_(-wibble, wibble, gen);
  };
  while (step >= 2) {
    const int64_t half = step / 2;
    at::Tensor corner = m.slice(0, 0, mapsize, step).slice(1, 0, mapsize, step);
    at::Tensor sq = corner + corner.roll({-1}, {0});
    sq = sq + sq.roll({-1}, {1});
    m.slice(0, half, mapsize, step).slice(1, half, mapsize, step).copy_(wibbled_mean(sq));
    at::Tensor dr = m.slice(0, half, mapsize, step).slice(1, half, mapsize, step);
    at::Tensor ul = m.slice(0, 0, mapsize, step).slice(1, 0, mapsize, step);
    at::Tensor lt = dr + dr.roll({1}, {0}) + ul + ul.roll({-1}, {1});
    m.slice(0, 0, mapsize, step).slice(1, half, mapsize, step).copy_(wibbled_mean(lt));
    at::Tensor tt = dr + dr.roll({1}, {1}) + ul + ul.roll({-1}, {0});
    m.slice(0, half, mapsize, step).slice(1, 0, mapsize, step).copy_(wibbled_mean(tt));
    step /= 2;
    wibble /= wibbledecay;
  }
  m = m - m.min();
  return m / m.max();
}

// Baseline JPEG round trip at `quality` for [3, H, W] in [0, 1].
at::Tensor JpegRoundTrip(const at::Tensor& img, int quality) {
  static const double kLuma[64] = {16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                                    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                                    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                                    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
  static const double kChroma[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                                      24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                                      99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                                      99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};
  const double scale = quality < 50 ? 5000.0 / quality : 200.0 - 2.0 * quality;
  auto table = [&](const double* t) {
    at::Tensor q = at::tensor(std::vector<double>(t, t + 64), at::kDouble).view({8, 8});
    return at::clamp(at::floor((q * scale + 50) / 100), 1, 255);
  };
  at::Tensor ql = table(kLuma), qc = table(kChroma);
  at::Tensor d = at::empty({8, 8}, at::kDouble);  // orthonormal DCT-II matrix
  for (int k = 0; k < 8; ++k)
    for (int n = 0; n < 8; ++n)
      d[k][n] = (k == 0 ? std::sqrt(1.0 / 8) : std::sqrt(2.0 / 8)) * std::cos(kPi * (2 * n + 1) * k / 16.0);
  const int64_t h = img.size(1), w = img.size(2);
  const int64_t hp = (h + 15) / 16 * 16, wp = (w + 15) / 16 * 16;
  at::Tensor x = at::round(img.to(at::kDouble).clamp(0, 1) * 255);
  x = at::replication_pad2d(x.unsqueeze(0), {0, wp - w, 0, hp - h})[0];
  at::Tensor r = x[0], g = x[1], b = x[2];
  at::Tensor y = 0.299 * r + 0.587 * g + 0.114 * b;
  at::Tensor cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128;
  at::Tensor cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128;
  auto code = [&](const at::Tensor& plane, const at::Tensor& q) {
    const int64_t ph = plane.size(0), pw = plane.size(1);
    // [ph, pw] -> blocks [bh, bw, 8, 8]
    at::Tensor blocks = (plane - 128).view({ph / 8, 8, pw / 8, 8}).permute({0, 2, 1, 3});
    at::Tensor coef = at::matmul(at::matmul(d, blocks), d.t());
    coef = at::round(coef / q) * q;
    at::Tensor back = at::matmul(at::matmul(d.t(), coef), d) + 128;
    return back.permute({0, 2, 1, 3}).reshape({ph, pw});
  };
  auto sub = [](const at::Tensor& p) { return at::avg_pool2d(p.view({1, 1, p.size(0), p.size(1)}), {2, 2})[0][0]; };
  at::Tensor y2 = code(y, ql);
  at::Tensor cb2 = code(sub(cb), qc).repeat_interleave(2, 0).repeat_interleave(2, 1);
  at::Tensor cr2 = code(sub(cr), qc).repeat_interleave(2, 0).repeat_interleave(2, 1);
  at::Tensor out = at::stack({y2 + 1.402 * (cr2 - 128), y2 - 0.344136 * (cb2 - 128) - 0.714136 * (cr2 - 128),
                              y2 + 1.772 * (cb2 - 128)});
  out = at::round(out).clamp(0, 255) / 255.0;
  return out.narrow(1, 0, h).narrow(2, 0, w).to(img.dtype());
}

at::Tensor ElasticTransform(const at::Tensor& img, double alpha, double sigma, double affine, at::Generator& gen) {
  // img [C, H, W]. Random affine from three jittered points, then a smooth
  // random displacement field, both sampled bilinearly with reflection.
  const int64_t h = img.size(1), w = img.size(2);
  const double cx = w / 2, cy = h / 2, sq = std::min(h, w) / 3;
  double src[3][2] = {{cx + sq, cy + sq}, {cx + sq, cy - sq}, {cx - sq, cy - sq}};
  double dst[3][2];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) dst[i][j] = src[i][j] + Uniform(gen, -affine, affine);
  // Solve dst = A [x y 1]^T for A (2x3), then invert for sampling.
  at::Tensor P = at::tensor({src[0][0], src[0][1], 1.0, src[1][0], src[1][1], 1.0, src[2][0], src[2][1], 1.0},
                            at::kDouble).view({3, 3});
  at::Tensor Q = at::tensor({dst[0][0], dst[0][1], dst[1][0], dst[1][1], dst[2][0], dst[2][1]}, at::kDouble).view({3, 2});
  at::Tensor A = at::linalg_solve(P, Q).t();  // [2, 3]
  at::Tensor full = at::eye(3, at::kDouble);
  full.narrow(0, 0, 2).copy_(A);
  at::Tensor inv = at::linalg_inv(full);
  at::Tensor xs = at::arange(w, at::kDouble).view({1, w}).expand({h, w});
  at::Tensor ys = at::arange(h, at::kDouble).view({h, 1}).expand({h, w});
  at::Tensor sx = inv[0][0] * xs + inv[0][1] * ys + inv[0][2];
  at::Tensor sy = inv[1][0] * xs + inv[1][1] * ys + inv[1][2];
  auto noise = [&]() {
    at::Tensor n = at::empty({1, 1, h, w}, at::kDouble).uniform_(-1, 1, gen);
    return GaussianSmooth(n, sigma, 3.0, "reflect")[0][0] * alpha;
  };
  // The reference displaces after the affine warp; composing the two
  // samplings into one is the same map up to interpolation.
  at::Tensor dx = noise(), dy = noise();
  at::Tensor gx = sx + dx, gy = sy + dy;
  at::Tensor grid = at::stack({2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1}, -1).unsqueeze(0).to(img.dtype());
  return at::grid_sampler(img.unsqueeze(0), grid, 0, 2, true)[0];
}

at::Tensor GlassBlur(const at::Tensor& img, double sigma, int64_t delta, int iterations, at::Generator& gen) {
  at::Tensor x = at::floor(GaussianBlur(img.unsqueeze(0), sigma)[0].clamp(0, 1) * 255) / 255;
  x = x.contiguous();
  const int64_t c = x.size(0), h = x.size(1), w = x.size(2);
  const int64_t nh = std::max<int64_t>(0, h - 2 * delta), nw = std::max<int64_t>(0, w - 2 * delta);
  at::Tensor shifts = at::randint(-delta, delta, {iterations, std::max<int64_t>(nh, 1), std::max<int64_t>(nw, 1), 2}, gen,
                                  at::TensorOptions().dtype(at::kLong));
  auto s = shifts.accessor<int64_t, 4>();
  auto a = x.accessor<float, 3>();
  for (int it = 0; it < iterations; ++it) {
    for (int64_t i = 0; i < nh; ++i) {
      const int64_t hh = h - delta - i;  // range(h - delta, delta, -1)
      for (int64_t j = 0; j < nw; ++j) {
        const int64_t ww = w - delta - j;
        const int64_t h2 = std::clamp<int64_t>(hh + s[it][i][j][1], 0, h - 1);
        const int64_t w2 = std::clamp<int64_t>(ww + s[it][i][j][0], 0, w - 1);
        const int64_t hh_c = std::min(hh, h - 1), ww_c = std::min(ww, w - 1);
        for (int64_t ch = 0; ch < c; ++ch) std::swap(a[ch][hh_c][ww_c], a[ch][h2][w2]);
      }
    }
  }
  return GaussianBlur(x.unsqueeze(0), sigma)[0];
}

at::Tensor DefocusKernel(double radius, double alias_blur) {
  const int64_t r = radius <= 8 ? 8 : static_cast<int64_t>(radius);
  at::Tensor l = at::arange(-r, r + 1, at::kDouble);
  at::Tensor disk = ((l.view({-1, 1}).pow(2) + l.view({1, -1}).pow(2)) <= radius * radius).to(at::kDouble);
  disk = disk / disk.sum();
  const int64_t ks = radius <= 8 ? 3 : 5;
  at::Tensor g = Gaussian1d(alias_blur, ks / 2);
  at::Tensor k = Filter2d(disk.view({1, 1, disk.size(0), disk.size(1)}), at::outer(g, g), "reflect")[0][0];
  return k;
}

// Adds amp * exp(-d^2 / (2 width^2)) to buf [m, m] (row-major), d = the
// distance to the segment (x0, y0)-(x1, y1): a thin anisotropic Gaussian
// streak with round ends. Only the segment's bounding box (+ 3.5 width) is
// visited, so a texture of thousands of streaks stays cheap.
void AddStreak(float* buf, int64_t m, double x0, double y0, double x1, double y1, double width,
               double amp) {
  const double margin = 3.5 * width;
  const int64_t xa = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(x0, x1) - margin)));
  const int64_t xb = std::min<int64_t>(m - 1, static_cast<int64_t>(std::ceil(std::max(x0, x1) + margin)));
  const int64_t ya = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(y0, y1) - margin)));
  const int64_t yb = std::min<int64_t>(m - 1, static_cast<int64_t>(std::ceil(std::max(y0, y1) + margin)));
  const double dx = x1 - x0, dy = y1 - y0, len2 = std::max(dx * dx + dy * dy, 1e-12);
  const double inv2w2 = 1.0 / (2 * width * width);
  for (int64_t y = ya; y <= yb; ++y) {
    for (int64_t x = xa; x <= xb; ++x) {
      const double t = std::clamp(((x - x0) * dx + (y - y0) * dy) / len2, 0.0, 1.0);
      const double ex = x - x0 - t * dx, ey = y - y0 - t * dy;
      const double d2 = ex * ex + ey * ey;
      if (d2 * inv2w2 < 12) buf[y * m + x] += static_cast<float>(amp * std::exp(-d2 * inv2w2));
    }
  }
}

// Synthetic frost photograph, [3, m, m] in [0, 1] (corruptions.h). Lengths
// are in units of u = side / 64 px, so a crop of `side` px shows the same
// amount of frost at any image size as the reference's 64 px crops of its
// photographs (resized by 0.3) show on Tiny-ImageNet.
at::Tensor MakeFrostTexture(int64_t m, int64_t side, at::Generator& gen) {
  const double u = static_cast<double>(side) / 64.0;
  const double width = std::max(0.45, 0.3 * u);  // streak sigma in px
  std::vector<float> buf(static_cast<size_t>(m * m), 0.0f);
  // Dendritic crystals: a stem, side branches at +-60 degrees (hexagonal
  // ice) that shorten towards the tips, and twigs on every branch. Every
  // crystal draws a fixed number of uniforms so the stream is reproducible.
  constexpr int kBranches = 6, kTwigs = 2;
  constexpr int kPerCrystal = 5 + kBranches * (4 + kTwigs * 2);
  const int64_t crystals = std::max<int64_t>(1, std::llround(std::pow(m / (14.0 * u), 2)));
  at::Tensor cr = at::empty({crystals, kPerCrystal}, at::kDouble).uniform_(0, 1, gen).contiguous();
  auto c = cr.accessor<double, 2>();
  for (int64_t k = 0; k < crystals; ++k) {
    int j = 0;
    const double cx = c[k][j++] * m, cy = c[k][j++] * m, theta = c[k][j++] * kPi;
    const double len = u * (6 + 20 * c[k][j++]);
    const double amp = 0.6 + 0.4 * c[k][j++];
    const double ux = std::cos(theta), uy = std::sin(theta);
    AddStreak(buf.data(), m, cx - ux * len / 2, cy - uy * len / 2, cx + ux * len / 2, cy + uy * len / 2,
              width, amp);
    for (int b = 0; b < kBranches; ++b) {
      const double t = c[k][j++] - 0.5;  // position along the stem, -0.5..0.5
      const double sign = c[k][j++] < 0.5 ? -1.0 : 1.0;
      const double phi = theta + sign * (kPi / 3 + 0.25 * (c[k][j++] - 0.5));
      const double blen = len * (0.15 + 0.35 * c[k][j++]) * (1.0 - std::abs(t));
      const double bx = cx + ux * t * len, by = cy + uy * t * len;
      const double ex = bx + std::cos(phi) * blen, ey = by + std::sin(phi) * blen;
      AddStreak(buf.data(), m, bx, by, ex, ey, width, 0.8 * amp);
      for (int w = 0; w < kTwigs; ++w) {
        const double tt = 0.3 + 0.6 * c[k][j++];
        const double psi = phi + (w % 2 == 0 ? 1.0 : -1.0) * kPi / 3;
        const double tlen = blen * 0.45 * c[k][j++];
        const double tx = bx + (ex - bx) * tt, ty = by + (ey - by) * tt;
        AddStreak(buf.data(), m, tx, ty, tx + std::cos(psi) * tlen, ty + std::sin(psi) * tlen, width, 0.6 * amp);
      }
    }
  }
  // Loose needles between the crystals.
  const int64_t needles = std::llround(std::pow(m / (16.0 * u), 2));
  at::Tensor nd = at::empty({needles, 5}, at::kDouble).uniform_(0, 1, gen).contiguous();
  auto n = nd.accessor<double, 2>();
  for (int64_t k = 0; k < needles; ++k) {
    const double x = n[k][0] * m, y = n[k][1] * m, theta = n[k][2] * kPi, len = u * (1.5 + 5 * n[k][3]);
    AddStreak(buf.data(), m, x, y, x + std::cos(theta) * len, y + std::sin(theta) * len, width,
              0.15 + 0.35 * n[k][4]);
  }
  at::Tensor crystal = at::from_blob(buf.data(), {m, m}, at::kFloat).to(at::kDouble);
  // Two plasma fractals: a faint icy haze behind the crystals, and a
  // low-frequency modulation so the frost is thicker in some places.
  int64_t mapsize = 2;
  while (mapsize < m) mapsize *= 2;
  at::Tensor haze = PlasmaFractal(mapsize, 2.0, gen).narrow(0, 0, m).narrow(1, 0, m);
  at::Tensor thick = PlasmaFractal(mapsize, 1.6, gen).narrow(0, 0, m).narrow(1, 0, m);
  at::Tensor ice = 1 - at::exp(-6.0 * crystal);  // overlapping crystals saturate
  at::Tensor base = 0.005 + 0.045 * haze;
  at::Tensor f = base + (0.97 - base) * ice * (0.75 + 0.25 * thick);
  // Bluish white: ice is whiter than it is blue, the dark gaps bluer.
  at::Tensor rgb = at::stack({0.88 * f, 0.94 * f + 0.005, 0.98 * f + 0.02});
  return rgb.clamp(0, 1).to(at::kFloat);
}

}  // namespace

const std::vector<std::string>& CorruptionNames() {
  // models.md §3.4's order (the Tiny-ImageNet-C evaluation's).
  static const std::vector<std::string> k = {
      "brightness", "defocus_blur", "fog", "gaussian_noise", "impulse_noise",
      "motion_blur", "shot_noise", "zoom_blur", "contrast", "elastic_transform",
      "frost", "glass_blur", "jpeg_compression", "pixelate", "snow"};
  return k;
}

at::Tensor FrostTexture(int64_t size, int64_t image_side, at::Generator& gen) {
  // Below 64 px the crystals would be thinner than a pixel: draw them at 64
  // px per image side and area-average down, as the reference's photographs
  // are resized.
  const int64_t k = image_side >= 64 ? 1 : (64 + image_side - 1) / image_side;
  at::Tensor t = MakeFrostTexture(size * k, image_side * k, gen);
  if (k == 1) return t;
  return at::avg_pool2d(t.unsqueeze(0), {k, k})[0].clamp(0, 1);
}

at::Tensor GaussianBlur(const at::Tensor& images, double sigma) {
  return GaussianSmooth(images, sigma, 4.0, "replicate");
}

absl::StatusOr<at::Tensor> Corrupt(const at::Tensor& images_in, const std::string& name, int severity,
                                   at::Generator& gen) {
  if (severity < 1 || severity > 5) {
    return absl::InvalidArgumentError(absl::StrCat("corruption severity must be in 1..5, got ", severity));
  }
  const int i = severity - 1;
  at::Tensor x = images_in.to(at::kFloat).cpu().contiguous();
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (name == "gaussian_noise") {
    const double c[] = {0.04, 0.08, .12, .15, .18};
    return Clip(x + at::empty_like(x).normal_(0, c[i], gen));
  }
  if (name == "shot_noise") {
    const double c[] = {250, 100, 50, 30, 15};
    return Clip(at::poisson(x.to(at::kDouble) * c[i], gen).to(at::kFloat) / c[i]);
  }
  if (name == "impulse_noise") {
    const double c[] = {.01, .02, .05, .08, .14};
    at::Tensor u = at::empty_like(x).uniform_(0, 1, gen);
    at::Tensor salt = at::empty_like(x).uniform_(0, 1, gen) < 0.5;
    at::Tensor hit = u < c[i];
    return Clip(at::where(hit, salt.to(at::kFloat), x));
  }
  if (name == "defocus_blur") {
    const double c[][2] = {{0.5, 0.6}, {1, 0.1}, {1.5, 0.1}, {2.5, 0.01}, {3, 0.1}};
    at::Tensor k = DefocusKernel(c[i][0], c[i][1]);
    if (k.size(0) / 2 >= std::min(h, w)) return absl::InvalidArgumentError("defocus_blur: image too small");
    return Clip(Filter2d(x, k, "reflect"));
  }
  if (name == "glass_blur") {
    const double c[][3] = {{0.1, 1, 1}, {0.5, 1, 1}, {0.6, 1, 2}, {0.7, 2, 1}, {0.9, 2, 2}};
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      out.push_back(GlassBlur(x[b], c[i][0], static_cast<int64_t>(c[i][1]), static_cast<int>(c[i][2]), gen));
    }
    return Clip(at::stack(out));
  }
  if (name == "motion_blur") {
    const double c[][2] = {{10, 1}, {10, 1.5}, {10, 2}, {10, 2.5}, {12, 3}};
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      out.push_back(MotionBlur(x[b], static_cast<int64_t>(c[i][0]), c[i][1], Uniform(gen, -45, 45)));
    }
    return Clip(at::stack(out));
  }
  if (name == "zoom_blur") {
    const int counts[] = {6, 11, 16, 21, 26};
    at::Tensor acc = x.clone();
    for (int k = 0; k < counts[i]; ++k) acc = acc + ClippedZoom(x, 1.0 + 0.01 * k);
    return Clip(acc / double(counts[i] + 1));
  }
  if (name == "snow") {
    const double c[][7] = {{0.1, 0.2, 1, 0.6, 8, 3, 0.8},
                           {0.1, 0.2, 1, 0.5, 10, 4, 0.8},
                           {0.15, 0.3, 1.75, 0.55, 10, 4, 0.7},
                           {0.25, 0.3, 2.25, 0.6, 12, 6, 0.65},
                           {0.3, 0.3, 1.25, 0.65, 14, 12, 0.6}};
    const double* p = c[i];
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      at::Tensor layer = at::empty({1, 1, h, w}).normal_(p[0], p[1], gen);
      layer = ClippedZoom(layer, p[2])[0];
      layer = at::where(layer < p[3], at::zeros_like(layer), layer).clamp(0, 1);
      layer = MotionBlur(layer, static_cast<int64_t>(p[4]), p[5], Uniform(gen, -135, -45));
      at::Tensor img = x[b];
      at::Tensor gray = img.mean(0, true);
      img = p[6] * img + (1 - p[6]) * at::maximum(img, gray * 1.5 + 0.5);
      out.push_back(img + layer + layer.flip({1, 2}));
    }
    return Clip(at::stack(out));
  }
  if (name == "fog") {
    const double c[][2] = {{.4, 3}, {.7, 3}, {1, 2.5}, {1.5, 2}, {2, 1.75}};
    int64_t mapsize = 1;
    while (mapsize < std::max(h, w)) mapsize *= 2;
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      const double mx = x[b].max().item<double>();
      at::Tensor plasma = PlasmaFractal(mapsize, c[i][1], gen).narrow(0, 0, h).narrow(1, 0, w).to(at::kFloat);
      out.push_back((x[b] + c[i][0] * plasma) * mx / (mx + c[i][0]));
    }
    return Clip(at::stack(out));
  }
  if (name == "frost") {
    // Tiny-ImageNet-C's (image, frost) weights. ImageNet-C (224 px) uses
    // (1, .4), (.8, .6), (.7, .7), (.65, .7), (.6, .75).
    const double c[][2] = {{1, 0.3}, {0.9, 0.4}, {0.8, 0.45}, {0.75, 0.5}, {0.7, 0.55}};
    const int64_t side = std::max(h, w), m = 3 * side;
    at::Tensor tex = FrostTexture(m, side, gen);
    at::Tensor off = at::randint(0, m - side + 1, {n, 2}, gen, at::TensorOptions().dtype(at::kLong));
    at::Tensor flip = at::randint(0, 8, {n}, gen, at::TensorOptions().dtype(at::kLong));
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      // A random crop in one of the 8 orientations of the square, so the
      // images of one batch see different frost.
      at::Tensor crop = tex.narrow(1, off[b][0].item<int64_t>(), side).narrow(2, off[b][1].item<int64_t>(), side);
      const int64_t o = flip[b].item<int64_t>();
      if (o & 1) crop = crop.flip({2});
      if (o & 2) crop = crop.flip({1});
      if (o & 4) crop = crop.transpose(1, 2);
      crop = crop.narrow(1, 0, h).narrow(2, 0, w);
      out.push_back(c[i][0] * x[b] + c[i][1] * crop);
    }
    return Clip(at::stack(out));
  }
  if (name == "brightness") {
    // HSV value + c with hue and saturation kept: rgb scales by V'/V (a
    // black pixel becomes grey V').
    const double c[] = {.1, .2, .3, .4, .5};
    at::Tensor v = std::get<0>(x.max(1, true));
    at::Tensor v2 = (v + c[i]).clamp(0, 1);
    return Clip(at::where(v > 0, x * (v2 / v.clamp_min(1e-12)), v2.expand_as(x)));
  }
  if (name == "contrast") {
    const double c[] = {.4, .3, .2, .1, 0.05};
    at::Tensor mean = x.mean({2, 3}, true);
    return Clip((x - mean) * c[i] + mean);
  }
  if (name == "elastic_transform") {
    // Fractions of the image side (the reference's ImageNet-C tuple / 224).
    const double c[][3] = {{0, 0, 0.08}, {0.05, 0.3, 0.06}, {0.1, 0.08, 0.06}, {0.1, 0.03, 0.03}, {0.16, 0.03, 0.02}};
    const double side = static_cast<double>(std::min(h, w));
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) {
      out.push_back(ElasticTransform(x[b], c[i][0] * side, c[i][1] * side, c[i][2] * side, gen));
    }
    return Clip(at::stack(out));
  }
  if (name == "pixelate") {
    const double c[] = {0.9, 0.8, 0.7, 0.6, 0.5};
    const int64_t sh = std::max<int64_t>(1, static_cast<int64_t>(h * c[i]));
    const int64_t sw = std::max<int64_t>(1, static_cast<int64_t>(w * c[i]));
    at::Tensor small = at::adaptive_avg_pool2d(x, {sh, sw});
    return Clip(at::upsample_nearest2d(small, {h, w}));
  }
  if (name == "jpeg_compression") {
    const int c[] = {65, 58, 50, 40, 25};
    std::vector<at::Tensor> out;
    for (int64_t b = 0; b < n; ++b) out.push_back(JpegRoundTrip(x[b], c[i]));
    return at::stack(out);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown corruption '", name, "'"));
}

nlohmann::json RobustnessResult::ToJson() const {
  nlohmann::json acc = nlohmann::json::object(), mean_per = nlohmann::json::object();
  at::Tensor a = accuracy.to(at::kDouble).cpu();
  for (size_t c = 0; c < corruptions.size(); ++c) {
    std::vector<double> row;
    for (size_t s = 0; s < severities.size(); ++s) row.push_back(a[c][s].item<double>());
    acc[corruptions[c]] = row;
    mean_per[corruptions[c]] = severities.empty() ? 0.0 : a[c].mean().item<double>();
  }
  return {{"corruptions", corruptions},
          {"severities", severities},
          {"accuracy", acc},
          {"mean_per_corruption", mean_per},
          {"clean_accuracy", clean_accuracy},
          {"mean_accuracy", mean_accuracy},
          {"relative", clean_accuracy > 0 ? nlohmann::json(mean_accuracy / clean_accuracy) : nlohmann::json()},
          {"images", images}};
}

absl::StatusOr<RobustnessResult> EvaluateCorruptionRobustness(
    const std::function<at::Tensor(const at::Tensor&)>& predict, const BatchVisitor& batches,
    const RobustnessOptions& options) {
  const std::vector<std::string>& all = CorruptionNames();
  std::vector<int64_t> global;  // index in CorruptionNames(): the cell seeds
  for (const auto& c : options.corruptions) {
    auto it = std::find(all.begin(), all.end(), c);
    if (it == all.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown corruption '", c, "' (known: ", absl::StrJoin(all, ", "), ")"));
    }
    global.push_back(it - all.begin());
  }
  for (int s : options.severities) {
    if (s < 1 || s > 5) return absl::InvalidArgumentError(absl::StrCat("corruption severity must be in 1..5, got ", s));
  }
  RobustnessResult r;
  r.corruptions = options.corruptions;
  r.severities = options.severities;
  r.accuracy = at::zeros({static_cast<int64_t>(r.corruptions.size()), static_cast<int64_t>(r.severities.size())},
                         at::kDouble);
  auto run = [&](const std::string& name, int severity, uint64_t cell_seed) -> absl::StatusOr<double> {
    at::Generator gen = at::detail::createCPUGenerator(cell_seed);
    int64_t correct = 0, total = 0;
    absl::Status err;
    batches([&](const at::Tensor& images, const at::Tensor& labels) {
      if (!err.ok()) return;
      at::Tensor in = images;
      if (!name.empty()) {
        auto c = Corrupt(images, name, severity, gen);
        if (!c.ok()) {
          err = c.status();
          return;
        }
        in = *c;
      }
      at::Tensor pred = predict(in).argmax(1).cpu();
      correct += (pred == labels.cpu()).sum().item<int64_t>();
      total += labels.size(0);
    });
    if (!err.ok()) return err;
    if (total == 0) return absl::InvalidArgumentError("corruption evaluation: the test set is empty");
    r.images = total;
    return double(correct) / total;
  };
  auto clean = run("", 0, options.seed);
  if (!clean.ok()) return clean.status();
  r.clean_accuracy = *clean;
  for (size_t c = 0; c < r.corruptions.size(); ++c) {
    if (options.before_corruption) {
      if (absl::Status st = options.before_corruption(c, r.corruptions[c]); !st.ok()) return st;
    }
    for (size_t k = 0; k < r.severities.size(); ++k) {
      const int s = r.severities[k];
      auto a = run(r.corruptions[c], s, options.seed + 1 + static_cast<uint64_t>(global[c]) * 5 + (s - 1));
      if (!a.ok()) return a.status();
      r.accuracy[c][k] = *a;
    }
  }
  r.mean_accuracy = r.accuracy.numel() ? r.accuracy.mean().item<double>() : 0.0;
  return r;
}

absl::StatusOr<RobustnessResult> EvaluateCorruptionRobustness(
    const std::function<at::Tensor(const at::Tensor&)>& predict, const BatchVisitor& batches,
    const std::vector<std::string>& corruptions, uint64_t seed) {
  RobustnessOptions o;
  o.corruptions = corruptions;
  o.seed = seed;
  return EvaluateCorruptionRobustness(predict, batches, o);
}

void WriteRobustnessPng(const std::string& path, const RobustnessResult& r) {
  // Rows = corruptions, columns = severities then the row mean; a colour
  // bar (red = 0 .. green = 1) at the bottom. Text scale 2 so the labels
  // stay readable when the image is shown scaled down.
  const int rows = static_cast<int>(r.corruptions.size());
  const int cols = static_cast<int>(r.severities.size()) + 1;
  size_t longest = 4;
  for (const auto& c : r.corruptions) longest = std::max(longest, c.size());
  const int cell_w = 84, cell_h = 30, left = Canvas::TextWidth(std::string(longest, 'x'), 2) + 24;
  const int top = 108, grid_w = cols * cell_w;
  const std::string title = absl::StrFormat("CLEAN %.3f  MEAN %.3f  REL %.3f", r.clean_accuracy,
                                            r.mean_accuracy,
                                            r.clean_accuracy > 0 ? r.mean_accuracy / r.clean_accuracy : 0.0);
  const int width = std::max(left + grid_w + 16, Canvas::TextWidth(title, 2) + 24);
  Canvas canvas(width, top + rows * cell_h + 80);
  auto colour = [](double v) { return HsvToRgb(120.0 * std::clamp(v, 0.0, 1.0), 0.6, 0.95); };
  canvas.Text(12, 10, "TOP-1 ACCURACY UNDER CORRUPTION", {0, 0, 0}, 2);
  canvas.Text(12, 34, title, {0, 0, 0}, 2);
  canvas.Text(left, top - 44, "SEVERITY", {80, 80, 80}, 2);
  for (int s = 0; s < cols; ++s) {
    const std::string label = s + 1 < cols ? absl::StrCat(r.severities[s]) : "MEAN";
    canvas.Text(left + s * cell_w + (cell_w - Canvas::TextWidth(label, 2)) / 2, top - 20, label, {0, 0, 0}, 2);
  }
  at::Tensor a = r.accuracy.to(at::kDouble).cpu();
  for (int c = 0; c < rows; ++c) {
    const int y = top + c * cell_h;
    canvas.Text(12, y + 8, r.corruptions[c], {0, 0, 0}, 2);
    for (int s = 0; s < cols; ++s) {
      const double v = s + 1 < cols ? a[c][s].item<double>() : a[c].mean().item<double>();
      const int x = left + s * cell_w + (s + 1 == cols ? 6 : 0);
      canvas.FillRect(x, y, cell_w - 2, cell_h - 2, colour(v));
      const std::string t = absl::StrFormat("%.2f", v);
      canvas.Text(x + (cell_w - 2 - Canvas::TextWidth(t, 2)) / 2, y + 7, t, {0, 0, 0}, 2);
    }
  }
  // Colour bar.
  const int by = top + rows * cell_h + 24, bw = grid_w - 12;
  for (int i = 0; i < bw; ++i) canvas.FillRect(left + i, by, 1, 16, colour(double(i) / (bw - 1)));
  canvas.Rect(left, by, bw, 16, {0, 0, 0});
  canvas.Text(left - 8, by + 22, "0", {0, 0, 0}, 2);
  canvas.Text(left + bw / 2 - 18, by + 22, "0.5", {0, 0, 0}, 2);
  canvas.Text(left + bw - 8, by + 22, "1", {0, 0, 0}, 2);
  canvas.Save(path);
}

void WriteImageRowsPng(const std::string& path, const std::string& title,
                       const std::vector<std::pair<std::string, at::Tensor>>& rows, int scale) {
  size_t longest = 4;
  int64_t cols = 0, h = 0, w = 0;
  for (const auto& [label, images] : rows) {
    longest = std::max(longest, label.size());
    cols = std::max<int64_t>(cols, images.size(0));
    h = std::max<int64_t>(h, images.size(2));
    w = std::max<int64_t>(w, images.size(3));
  }
  const int pad = 4, left = Canvas::TextWidth(std::string(longest, 'x'), 2) + 20, top = 40;
  const int cw = static_cast<int>(w) * scale + pad, ch = static_cast<int>(h) * scale + pad;
  Canvas canvas(std::max<int>(left + static_cast<int>(cols) * cw + 8, Canvas::TextWidth(title, 2) + 24),
                top + static_cast<int>(rows.size()) * ch + 8);
  canvas.Text(12, 12, title, {0, 0, 0}, 2);
  for (size_t r = 0; r < rows.size(); ++r) {
    const int y0 = top + static_cast<int>(r) * ch;
    canvas.Text(10, y0 + ch / 2 - 8, rows[r].first, {0, 0, 0}, 2);
    at::Tensor img = (rows[r].second.to(at::kFloat).cpu().clamp(0, 1) * 255).round().to(at::kByte).contiguous();
    auto px = img.accessor<uint8_t, 4>();
    for (int64_t i = 0; i < img.size(0); ++i) {
      const int x0 = left + static_cast<int>(i) * cw;
      for (int64_t yy = 0; yy < img.size(2) * scale; ++yy) {
        for (int64_t xx = 0; xx < img.size(3) * scale; ++xx) {
          const int64_t sy = yy / scale, sx = xx / scale;
          const bool grey = img.size(1) < 3;
          canvas.Set(x0 + static_cast<int>(xx), y0 + static_cast<int>(yy),
                     {px[i][0][sy][sx], px[i][grey ? 0 : 1][sy][sx], px[i][grey ? 0 : 2][sy][sx]});
        }
      }
    }
  }
  canvas.Save(path);
}

}  // namespace topolab::science
