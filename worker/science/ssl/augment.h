// SimCLR view augmentations (spec tdann.md §5) as batched tensor ops, so a
// whole batch is augmented in a few kernel launches on the CPU or GPU.
//
// Per image, independently, in this order:
//   1. RandomResizedCrop to the output size: area fraction U[0.08, 1], log-
//      uniform aspect ratio in [3/4, 4/3], up to 10 tries, then torchvision's
//      fallback (central crop with the ratio clamped to the range); bilinear.
//   2. Horizontal flip with p = 0.5.
//   3. Colour jitter with p = 0.8: brightness, contrast, saturation factors
//      U[1 − 0.8, 1 + 0.8] and a hue shift U[−0.2, 0.2] (fraction of the hue
//      circle), applied in a random order per image (torchvision ColorJitter).
//   4. Random grayscale with p = 0.2 (ITU-R 601 luma, replicated to 3
//      channels).
//   5. Gaussian blur with p = 0.5, σ ~ U[0.1, 2.0] px, separable kernel of
//      radius ceil(3σ), reflect padding.
// Values stay in [0, 1]. Normalisation (ImageNet mean/std) is the caller's.
//
// Grayscale images (3 equal channels, e.g. Fashion-MNIST) pass through the
// colour operations unchanged: saturation, hue and grayscale leave a gray
// pixel gray with the same value (up to float rounding); brightness and
// contrast still act, as they do on gray images in torchvision.
//
// Randomness comes only from the given generator (CPU generator; parameters
// are drawn on the CPU and moved to the images' device), so a seed fixes the
// views. Thread-compatible (the generator is not shared safely).
#ifndef TOPOLAB_WORKER_SCIENCE_SSL_AUGMENT_H_
#define TOPOLAB_WORKER_SCIENCE_SSL_AUGMENT_H_

#include <cstdint>

#include <ATen/ATen.h>

namespace topolab::science {

struct SimClrAugmentOptions {
  int64_t output_size = 0;        // 0 = same as the input
  double crop_scale_min = 0.08, crop_scale_max = 1.0;
  double crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;
  double flip_p = 0.5;
  double jitter_p = 0.8;
  double brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2;
  double grayscale_p = 0.2;
  double blur_p = 0.5;
  double blur_sigma_min = 0.1, blur_sigma_max = 2.0;
};

// One augmented view of every image.
// REQUIRES: images is [B, 3, H, W] floating point in [0, 1], B >= 1.
// Returns [B, 3, S, S] (S = output_size or H when 0; H must equal W when
// output_size is 0) of the same dtype and device.
at::Tensor SimClrAugment(const at::Tensor& images, const SimClrAugmentOptions& options,
                         at::Generator gen);

// The individual operations, exposed for tests and other pipelines. Each
// takes [B, 3, H, W] in [0, 1] and per-image parameters as a [B] tensor (any
// device; moved as needed) and returns a new tensor.
at::Tensor AdjustBrightness(const at::Tensor& images, const at::Tensor& factor);
at::Tensor AdjustContrast(const at::Tensor& images, const at::Tensor& factor);
at::Tensor AdjustSaturation(const at::Tensor& images, const at::Tensor& factor);
at::Tensor AdjustHue(const at::Tensor& images, const at::Tensor& shift);  // shift in [-0.5, 0.5]
at::Tensor ToGrayscale(const at::Tensor& images);                          // 3 equal channels
at::Tensor GaussianBlur(const at::Tensor& images, const at::Tensor& sigma);  // sigma > 0 px
// Crops boxes [B, 4] = (x0, y0, w, h) in input pixels (float) and resizes
// them to size×size bilinearly; `flip` [B] bool mirrors horizontally.
at::Tensor ResizedCrop(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& flip,
                       int64_t size);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_SSL_AUGMENT_H_
