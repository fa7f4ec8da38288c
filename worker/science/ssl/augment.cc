// Batched SimCLR augmentations. Random parameters are drawn on the CPU from
// the caller's generator (so results do not depend on the device), then the
// pixel work runs as a few tensor ops on the images' device.
#include "worker/science/ssl/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace topolab::science {
namespace {

at::Tensor PerImage(const at::Tensor& v, const at::Tensor& like) {
  return v.to(like.device(), like.scalar_type()).view({-1, 1, 1, 1});
}

// Indices (int64, CPU) of the true entries of a CPU bool vector.
at::Tensor Where(const at::Tensor& mask) { return mask.nonzero().view({-1}); }

// Applies `op` to the selected images only and writes the result back.
template <typename Op>
at::Tensor ApplyTo(const at::Tensor& images, const at::Tensor& sel_cpu, Op op) {
  if (sel_cpu.numel() == 0) return images;
  at::Tensor sel = sel_cpu.to(images.device());
  at::Tensor part = op(images.index_select(0, sel), sel_cpu);
  return images.index_copy(0, sel, part);
}

at::Tensor Luma(const at::Tensor& x) {  // [B,1,H,W]
  at::Tensor r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  at::Tensor l = r * 0.299 + g * 0.587 + b * 0.114;
  // A gray pixel keeps its exact value (the weights sum to 1 only up to
  // rounding), so colour ops are exact no-ops on grayscale images.
  at::Tensor gray = r.eq(g).logical_and(g.eq(b));
  return at::where(gray, r, l).unsqueeze(1);
}

}  // namespace

at::Tensor AdjustBrightness(const at::Tensor& images, const at::Tensor& factor) {
  return (images * PerImage(factor, images)).clamp(0.0, 1.0);
}

at::Tensor AdjustContrast(const at::Tensor& images, const at::Tensor& factor) {
  at::Tensor f = PerImage(factor, images);
  at::Tensor mean = Luma(images).mean({1, 2, 3}, /*keepdim=*/true);
  return (images * f + mean * (1 - f)).clamp(0.0, 1.0);
}

at::Tensor AdjustSaturation(const at::Tensor& images, const at::Tensor& factor) {
  at::Tensor f = PerImage(factor, images);
  at::Tensor out = (images * f + Luma(images) * (1 - f)).clamp(0.0, 1.0);
  // f·v + (1 − f)·v rounds away from v: keep gray pixels bit-exact.
  at::Tensor r = images.select(1, 0), g = images.select(1, 1), b = images.select(1, 2);
  return at::where(r.eq(g).logical_and(g.eq(b)).unsqueeze(1), images, out);
}

at::Tensor ToGrayscale(const at::Tensor& images) {
  return Luma(images).expand_as(images).contiguous();
}

at::Tensor AdjustHue(const at::Tensor& images, const at::Tensor& shift) {
  // RGB -> HSV -> RGB as in torchvision's tensor implementation.
  at::Tensor r = images.select(1, 0), g = images.select(1, 1), b = images.select(1, 2);
  at::Tensor maxc = std::get<0>(images.max(1)), minc = std::get<0>(images.min(1));
  at::Tensor eqc = maxc.eq(minc);
  at::Tensor cr = maxc - minc;
  at::Tensor ones = at::ones_like(maxc);
  at::Tensor s = cr / at::where(eqc, ones, maxc);
  at::Tensor crd = at::where(eqc, ones, cr);
  at::Tensor rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
  at::Tensor is_r = maxc.eq(r), is_g = maxc.eq(g).logical_and(is_r.logical_not());
  at::Tensor is_b = is_r.logical_not().logical_and(is_g.logical_not());
  at::Tensor h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc);
  h = (h / 6.0 + 1.0).remainder(1.0);
  h = (h + shift.to(images.device(), images.scalar_type()).view({-1, 1, 1})).remainder(1.0);
  at::Tensor v = maxc;
  at::Tensor i6 = (h * 6.0).floor();
  at::Tensor f = h * 6.0 - i6;
  at::Tensor i = i6.to(at::kLong).remainder(6);
  at::Tensor p = (v * (1.0 - s)).clamp(0.0, 1.0);
  at::Tensor q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
  at::Tensor t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
  // Sector table: (R, G, B) for i = 0..5.
  at::Tensor rs = at::stack({v, q, p, p, t, v}, 0);
  at::Tensor gs = at::stack({t, v, v, q, p, p}, 0);
  at::Tensor bs = at::stack({p, p, t, v, v, q}, 0);
  at::Tensor idx = i.unsqueeze(0);
  at::Tensor out = at::stack({rs.gather(0, idx).squeeze(0), gs.gather(0, idx).squeeze(0),
                              bs.gather(0, idx).squeeze(0)},
                             1);
  // Gray pixels (s = 0) come back as v = their value; keep them bit-exact.
  return at::where(eqc.unsqueeze(1), images, out);
}

at::Tensor GaussianBlur(const at::Tensor& images, const at::Tensor& sigma) {
  const int64_t h = images.size(2), w = images.size(3);
  at::Tensor sig = sigma.to(at::kCPU, at::kDouble).contiguous();
  const double smax = sig.max().item<double>();
  int64_t radius = static_cast<int64_t>(std::ceil(3.0 * smax));
  radius = std::max<int64_t>(1, std::min({radius, h - 1, w - 1}));
  if (h < 2 || w < 2) return images.clone();
  at::Tensor xs = at::arange(-radius, radius + 1, at::kDouble).view({1, -1});
  at::Tensor k = at::exp(-xs.pow(2) / (2.0 * sig.view({-1, 1}).pow(2)));
  k = k / k.sum(1, /*keepdim=*/true);                               // [n, 2R+1]
  k = k.to(images.device(), images.scalar_type());                    // [n, 2R+1]
  // A weighted sum of shifted copies rather than a grouped convolution: the
  // same arithmetic runs on every channel, so gray images stay exactly gray
  // (convolution backends may block channels differently).
  auto pass = [&](const at::Tensor& in, int64_t dim) {
    const int64_t len = in.size(dim);
    at::Tensor padded = dim == 3 ? at::reflection_pad2d(in, {radius, radius, 0, 0})
                                 : at::reflection_pad2d(in, {0, 0, radius, radius});
    at::Tensor out = at::zeros_like(in);
    for (int64_t t = 0; t <= 2 * radius; ++t) {
      out.add_(padded.narrow(dim, t, len) * k.select(1, t).view({-1, 1, 1, 1}));
    }
    return out;
  };
  at::Tensor x = pass(pass(images, 3), 2);
  return x.clamp(0.0, 1.0);
}

at::Tensor ResizedCrop(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& flip,
                       int64_t size) {
  const int64_t n = images.size(0);
  const double h = static_cast<double>(images.size(2)), w = static_cast<double>(images.size(3));
  at::Tensor bx = boxes.to(at::kCPU, at::kDouble).contiguous();
  at::Tensor fl = flip.to(at::kCPU, at::kBool).contiguous();
  at::Tensor theta = at::zeros({n, 2, 3}, at::kDouble);
  auto t = theta.accessor<double, 3>();
  auto bb = bx.accessor<double, 2>();
  const bool* f = fl.data_ptr<bool>();
  for (int64_t i = 0; i < n; ++i) {
    // Output u in [-1, 1] (pixel edges, align_corners = false) maps to input
    // x = x0 + (u + 1)/2 · cw, i.e. normalised (cw/W)·u + (2·x0 + cw)/W − 1.
    const double x0 = bb[i][0], y0 = bb[i][1], cw = bb[i][2], ch = bb[i][3];
    t[i][0][0] = (f[i] ? -1.0 : 1.0) * cw / w;
    t[i][0][2] = (2 * x0 + cw) / w - 1;
    t[i][1][1] = ch / h;
    t[i][1][2] = (2 * y0 + ch) / h - 1;
  }
  at::Tensor grid = at::affine_grid_generator(theta.to(images.device(), images.scalar_type()),
                                              {n, images.size(1), size, size},
                                              /*align_corners=*/false);
  // bilinear (0), border padding (1): sampling stays inside the image.
  return at::grid_sampler(images, grid, 0, 1, /*align_corners=*/false);
}

at::Tensor SimClrAugment(const at::Tensor& images, const SimClrAugmentOptions& o,
                         at::Generator gen) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(0) >= 1,
              "SimClrAugment: images must be [B, 3, H, W]");
  TORCH_CHECK(at::isFloatingType(images.scalar_type()), "SimClrAugment: images must be float");
  const int64_t n = images.size(0), height = images.size(2), width = images.size(3);
  TORCH_CHECK(o.output_size > 0 || height == width,
              "SimClrAugment: output_size 0 needs square images");
  const int64_t size = o.output_size > 0 ? o.output_size : height;
  const auto dbl = at::TensorOptions().dtype(at::kDouble);

  // 1–2. Crop boxes (torchvision RandomResizedCrop.get_params) and flips.
  at::Tensor u = at::rand({n, 10, 4}, gen, dbl);
  auto ua = u.accessor<double, 3>();
  at::Tensor boxes = at::empty({n, 4}, dbl);
  auto ba = boxes.accessor<double, 2>();
  const double area = static_cast<double>(height * width);
  const double log_r0 = std::log(o.crop_ratio_min), log_r1 = std::log(o.crop_ratio_max);
  for (int64_t i = 0; i < n; ++i) {
    bool found = false;
    for (int a = 0; a < 10 && !found; ++a) {
      const double target = area * (o.crop_scale_min +
                                    ua[i][a][0] * (o.crop_scale_max - o.crop_scale_min));
      const double ratio = std::exp(log_r0 + ua[i][a][1] * (log_r1 - log_r0));
      const double cw = std::round(std::sqrt(target * ratio));
      const double ch = std::round(std::sqrt(target / ratio));
      if (cw > 0 && cw <= width && ch > 0 && ch <= height) {
        ba[i][0] = std::floor(ua[i][a][2] * (width - cw + 1));
        ba[i][1] = std::floor(ua[i][a][3] * (height - ch + 1));
        ba[i][2] = cw;
        ba[i][3] = ch;
        found = true;
      }
    }
    if (!found) {  // central crop, aspect ratio clamped into range
      const double in_ratio = static_cast<double>(width) / height;
      double cw = width, ch = height;
      if (in_ratio < o.crop_ratio_min) {
        ch = std::round(cw / o.crop_ratio_min);
      } else if (in_ratio > o.crop_ratio_max) {
        cw = std::round(ch * o.crop_ratio_max);
      }
      ba[i][0] = std::floor((width - cw) / 2);
      ba[i][1] = std::floor((height - ch) / 2);
      ba[i][2] = cw;
      ba[i][3] = ch;
    }
  }
  at::Tensor flip = at::rand({n}, gen, dbl) < o.flip_p;
  at::Tensor x = ResizedCrop(images, boxes, flip, size);

  // 3. Colour jitter, ops in a random order per image.
  at::Tensor jitter = at::rand({n}, gen, dbl) < o.jitter_p;
  at::Tensor factors = at::rand({n, 4}, gen, dbl);
  at::Tensor bright = 1.0 + o.brightness * (2 * factors.select(1, 0) - 1);
  at::Tensor contr = 1.0 + o.contrast * (2 * factors.select(1, 1) - 1);
  at::Tensor satur = 1.0 + o.saturation * (2 * factors.select(1, 2) - 1);
  at::Tensor hue = o.hue * (2 * factors.select(1, 3) - 1);
  at::Tensor order = at::rand({n, 4}, gen, dbl).argsort(/*dim=*/int64_t{1});  // random permutation per image
  for (int64_t k = 0; k < 4; ++k) {
    at::Tensor op_k = order.select(1, k);
    for (int64_t op = 0; op < 4; ++op) {
      at::Tensor sel = Where(jitter.logical_and(op_k.eq(op)));
      x = ApplyTo(x, sel, [&](const at::Tensor& part, const at::Tensor& s) {
        switch (op) {
          case 0: return o.brightness > 0 ? AdjustBrightness(part, bright.index_select(0, s)) : part;
          case 1: return o.contrast > 0 ? AdjustContrast(part, contr.index_select(0, s)) : part;
          case 2: return o.saturation > 0 ? AdjustSaturation(part, satur.index_select(0, s)) : part;
          default: return o.hue > 0 ? AdjustHue(part, hue.index_select(0, s)) : part;
        }
      });
    }
  }
  // 4. Random grayscale.
  at::Tensor gray = at::rand({n}, gen, dbl) < o.grayscale_p;
  x = ApplyTo(x, Where(gray), [](const at::Tensor& part, const at::Tensor&) {
    return ToGrayscale(part);
  });
  // 5. Gaussian blur.
  at::Tensor blur = at::rand({n}, gen, dbl) < o.blur_p;
  at::Tensor sigma = o.blur_sigma_min + at::rand({n}, gen, dbl) * (o.blur_sigma_max - o.blur_sigma_min);
  x = ApplyTo(x, Where(blur), [&](const at::Tensor& part, const at::Tensor& s) {
    return GaussianBlur(part, sigma.index_select(0, s));
  });
  return x;
}

}  // namespace topolab::science
