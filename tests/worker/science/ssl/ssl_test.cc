// NT-Xent against a brute-force formula; SimCLR augmentations keep shape and
// range, are seeded, and leave grayscale images gray.
#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "worker/science/ssl/augment.h"
#include "worker/science/ssl/ntxent.h"

namespace topolab::science {
namespace {

// −log(exp(s_ip/τ) / Σ_{k≠i} exp(s_ik/τ)) averaged over 2B rows, with cosine
// similarities computed in plain loops.
double BruteNtXent(const at::Tensor& z1, const at::Tensor& z2, double tau) {
  at::Tensor z = at::cat({z1, z2}, 0).to(at::kDouble);
  const int64_t n = z.size(0), b = z1.size(0), d = z.size(1);
  std::vector<std::vector<double>> v(n, std::vector<double>(d));
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += z[i][k].item<double>() * z[i][k].item<double>();
    for (int64_t k = 0; k < d; ++k) v[i][k] = z[i][k].item<double>() / std::sqrt(norm);
  }
  auto sim = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t k = 0; k < d; ++k) s += v[i][k] * v[j][k];
    return s / tau;
  };
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = i < b ? i + b : i - b;
    double denom = 0;
    for (int64_t k = 0; k < n; ++k) {
      if (k != i) denom += std::exp(sim(i, k));
    }
    total += -std::log(std::exp(sim(i, p)) / denom);
  }
  return total / n;
}

TEST(NtXentTest, MatchesBruteForce) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  for (double tau : {0.1, 0.5, 1.0}) {
    at::Tensor z1 = at::randn({5, 8}, gen, at::kDouble);
    at::Tensor z2 = at::randn({5, 8}, gen, at::kDouble);
    NtXentOptions opt;
    opt.temperature = tau;
    EXPECT_NEAR(NtXentLoss(z1, z2, opt).item<double>(), BruteNtXent(z1, z2, tau), 1e-9) << tau;
  }
}

TEST(NtXentTest, IdenticalViewsOfOrthogonalImagesGiveClosedForm) {
  // z1 = z2 = e_i (B = 3): positive sim 1/τ, negatives 0 (4 of them):
  // loss = −log(e^{1/τ} / (e^{1/τ} + 4)).
  at::Tensor e = at::eye(3, at::kDouble);
  const double tau = 0.5;
  NtXentOptions opt;
  opt.temperature = tau;
  const double expected = -std::log(std::exp(1 / tau) / (std::exp(1 / tau) + 4));
  EXPECT_NEAR(NtXentLoss(e, e, opt).item<double>(), expected, 1e-12);
}

TEST(NtXentTest, IsDifferentiable) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor z1 = at::randn({4, 6}, gen).requires_grad_(true);
  at::Tensor z2 = at::randn({4, 6}, gen).requires_grad_(true);
  NtXentLoss(z1, z2).backward();
  ASSERT_TRUE(z1.grad().defined());
  EXPECT_GT(z1.grad().abs().sum().item<float>(), 0);
  EXPECT_FALSE(at::isnan(z2.grad()).any().item<bool>());
}

at::Tensor RandomImages(int64_t b, int64_t s, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({b, 3, s, s}, gen);
}

at::Tensor GrayImages(int64_t b, int64_t s, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({b, 1, s, s}, gen).expand({b, 3, s, s}).contiguous();
}

bool ChannelsEqual(const at::Tensor& x) {
  return at::equal(x.select(1, 0), x.select(1, 1)) && at::equal(x.select(1, 1), x.select(1, 2));
}

TEST(AugmentTest, KeepsShapeRangeAndIsSeeded) {
  at::Tensor x = RandomImages(16, 32, 2);
  SimClrAugmentOptions opt;
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor a = SimClrAugment(x, opt, g1);
  at::Tensor b = SimClrAugment(x, opt, g2);
  EXPECT_EQ(a.sizes(), x.sizes());
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_GE(a.min().item<float>(), 0.0f);
  EXPECT_LE(a.max().item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(a, b));
  at::Tensor c = SimClrAugment(x, opt, g1);   // generator advanced: new views
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_FALSE(at::allclose(a, x));
  opt.output_size = 24;
  EXPECT_EQ(SimClrAugment(x, opt, g1).sizes(), (std::vector<int64_t>{16, 3, 24, 24}));
}

TEST(AugmentTest, GrayscaleInputStaysGrayThroughEveryOp) {
  at::Tensor x = GrayImages(32, 28, 3);
  SimClrAugmentOptions opt;
  opt.jitter_p = 1.0;  // force every colour op on every image
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  for (int rep = 0; rep < 3; ++rep) {
    at::Tensor y = SimClrAugment(x, opt, gen);
    EXPECT_TRUE(ChannelsEqual(y));
    EXPECT_FALSE(at::isnan(y).any().item<bool>());
  }
  // The colour-only ops are exact no-ops on gray pixels.
  at::Tensor f = at::full({32}, 1.7, at::kDouble);
  EXPECT_TRUE(at::equal(AdjustSaturation(x, f), x));
  EXPECT_TRUE(at::equal(AdjustSaturation(x, at::zeros({32})), x));
  EXPECT_TRUE(at::equal(AdjustHue(x, at::full({32}, 0.2)), x));
  EXPECT_TRUE(at::equal(ToGrayscale(x), x));
}

TEST(AugmentTest, ColourOpsOnKnownPixels) {
  // One image of 1x1 pixel: pure red.
  at::Tensor red = at::tensor({1.0f, 0.0f, 0.0f}).view({1, 3, 1, 1});
  // Hue +1/3 turns red into green, −1/3 into blue.
  EXPECT_TRUE(at::allclose(AdjustHue(red, at::tensor({1.0 / 3})).view({3}),
                           at::tensor({0.0f, 1.0f, 0.0f}), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(AdjustHue(red, at::tensor({-1.0 / 3})).view({3}),
                           at::tensor({0.0f, 0.0f, 1.0f}), 1e-5, 1e-5));
  // Saturation 0 = luma gray; 0.299 for pure red.
  EXPECT_TRUE(at::allclose(AdjustSaturation(red, at::tensor({0.0})).view({3}),
                           at::full({3}, 0.299f), 1e-6, 1e-6));
  // Brightness scales and clamps.
  at::Tensor px = at::tensor({0.2f, 0.5f, 0.8f}).view({1, 3, 1, 1});
  EXPECT_TRUE(at::allclose(AdjustBrightness(px, at::tensor({1.5})).view({3}),
                           at::tensor({0.3f, 0.75f, 1.0f})));
  // Contrast 0 gives the mean luma everywhere.
  // Two pixels, black and white, in every channel.
  at::Tensor two = at::tensor({0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f}).view({1, 3, 1, 2});
  at::Tensor flat = AdjustContrast(two, at::tensor({0.0}));
  EXPECT_TRUE(at::allclose(flat, at::full_like(two, 0.5f), 1e-6, 1e-6));
}

TEST(AugmentTest, BlurPreservesConstantsAndMass) {
  at::Tensor flat = at::full({2, 3, 16, 16}, 0.4f);
  EXPECT_TRUE(at::allclose(GaussianBlur(flat, at::tensor({0.5, 2.0})), flat, 1e-6, 1e-6));
  at::Tensor dot = at::zeros({1, 3, 21, 21});
  dot.select(2, 10).select(2, 10).fill_(1.0f);
  at::Tensor out = GaussianBlur(dot, at::tensor({1.5}));
  EXPECT_NEAR(out.sum().item<float>(), 3.0f, 1e-4);   // away from borders
  EXPECT_LT(out[0][0][10][10].item<float>(), 0.2f);
  EXPECT_NEAR(out[0][0][10][9].item<float>(), out[0][0][10][11].item<float>(), 1e-6);
}

TEST(AugmentTest, FullBoxCropIsIdentityAndFlipMirrors) {
  at::Tensor x = RandomImages(2, 8, 4);
  at::Tensor boxes = at::tensor({0.0, 0.0, 8.0, 8.0, 0.0, 0.0, 8.0, 8.0}).view({2, 4});
  at::Tensor no = at::zeros({2}, at::kBool);
  EXPECT_TRUE(at::allclose(ResizedCrop(x, boxes, no, 8), x, 1e-5, 1e-5));
  at::Tensor yes = at::ones({2}, at::kBool);
  EXPECT_TRUE(at::allclose(ResizedCrop(x, boxes, yes, 8), x.flip({3}), 1e-5, 1e-5));
  // The right half, upsampled 2x horizontally: output column j samples input
  // pixel coordinate 3.5 + (j + 0.5)/2, so column 1 is 0.75·x[4] + 0.25·x[5].
  at::Tensor right = at::tensor({4.0, 0.0, 4.0, 8.0, 4.0, 0.0, 4.0, 8.0}).view({2, 4});
  at::Tensor y = ResizedCrop(x, right, no, 8);
  EXPECT_TRUE(at::allclose(y.select(3, 1), 0.75 * x.select(3, 4) + 0.25 * x.select(3, 5), 1e-5,
                           1e-5));
  EXPECT_TRUE(at::allclose(y.select(3, 7), x.select(3, 7), 1e-5, 1e-5));
}

}  // namespace
}  // namespace topolab::science
