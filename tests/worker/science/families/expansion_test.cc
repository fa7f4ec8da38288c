// Tests of the expansion model (models.md §2.1, §2.4) and its linear
// read-outs: curvature bank, shapes, seeding, ridge LOO vs brute force,
// planted-mapping ceiling, bootstrap, PCA, logistic probe.
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "worker/science/families/encoding.h"
#include "worker/science/families/expansion.h"

namespace topolab::science {
namespace {

TEST(CurvatureFilterBankTest, ShapeZeroMeanAndOrder) {
  at::Tensor bank = CurvatureFilterBank({});
  ASSERT_EQ(bank.sizes(), (std::vector<int64_t>{36, 1, 15, 15}));
  EXPECT_LT(bank.mean({1, 2, 3}).abs().max().item<double>(), 1e-6);
  // Hand-computed entry: filter 0 (curvature 0.01, theta 0). Centre pixel:
  // k = 0, G = 1 -> cos(0) - exp(-1/2); element [7][7] minus the filter mean.
  // Pixel [0][7] of the reference grid: x = -7, y = 0 -> k = -7,
  // G = exp(-1.44/2 * 49), value = G (cos(-8.4) - e^-0.5).
  at::Tensor f0 = bank[0][0].to(at::kDouble);
  const double mean_removed = f0[7][7].item<double>() - (1.0 - std::exp(-0.5));
  const double g = std::exp(-1.44 / 2.0 * 49.0);
  EXPECT_NEAR(f0[0][7].item<double>(), g * (std::cos(-8.4) - std::exp(-0.5)) + mean_removed, 1e-6);
  // Filters differ (orientation order is the inner loop; 12 per curvature).
  EXPECT_GT((bank[0] - bank[1]).abs().max().item<double>(), 1e-3);
}

TEST(CurvatureFilterBankTest, ThetaZeroIsSymmetricAcrossItsAxis) {
  at::Tensor bank = CurvatureFilterBank({});
  // Reference grid: [r][c] at x = r - 7, y = 7 - c. For theta = 0 the filter
  // depends on y only through y^2 -> symmetric under c -> 14 - c.
  for (int curv = 0; curv < 3; ++curv) {
    at::Tensor f = bank[curv * 12][0];
    EXPECT_TRUE(at::allclose(f, f.flip({1}), 1e-6, 1e-6)) << "curvature " << curv;
  }
  // theta = pi/2 (i = 3): depends on x only through x^2 -> symmetric in r.
  at::Tensor f = bank[3][0];
  EXPECT_TRUE(at::allclose(f, f.flip({0}), 1e-6, 1e-6));
}

TEST(CurvatureFilterBankTest, ReferenceGridIsTransposeOfImageGrid) {
  CurvatureFilterOptions ref, img;
  img.grid = "image";
  at::Tensor a = CurvatureFilterBank(ref), b = CurvatureFilterBank(img);
  EXPECT_TRUE(at::allclose(a, b.transpose(2, 3), 1e-6, 1e-6));
}

ExpansionOptions Tiny(int64_t image_size) {
  ExpansionOptions o;
  o.image_size = image_size;
  o.filters_2 = 16;
  o.filters_3 = 32;
  o.filters_4 = 64;
  o.filters_5 = 3;
  return o;
}

TEST(ExpansionTest, ShapesAt144And224) {
  EXPECT_EQ(ExpansionBlockSides(144, Tiny(144)), (std::vector<int64_t>{71, 32, 14, 6, 1}));
  EXPECT_EQ(ExpansionBlockSides(224, Tiny(224)), (std::vector<int64_t>{111, 52, 24, 11, 6}));
  Expansion m(Tiny(144));
  at::Tensor x = at::rand({2, 3, 144, 144});
  ModelOutput out = m->ForwardUnit(x);
  ASSERT_EQ(out.layers.size(), 5u);
  EXPECT_EQ(out.layers[0].sizes(), (std::vector<int64_t>{2, 108, 71, 71}));
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m->feature_dim(), 3);
  EXPECT_FALSE(out.logits.defined());
  ExpansionOptions with_head = Tiny(144);
  with_head.num_classes = 10;
  Expansion probe(with_head);
  EXPECT_EQ(probe->Forward(x).logits.sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(probe->parameters().size(), 2u);  // only the readout trains
  EXPECT_TRUE(at::allclose(m->Features(x), out.features));
  Expansion big(Tiny(224));
  EXPECT_EQ(big->feature_dim(), 36 * 3);
  EXPECT_EQ(big->Features(at::rand({1, 3, 224, 224})).sizes(), (std::vector<int64_t>{1, 108}));
}

// The readout sees standardised features (readout_norm: batchnorm, the
// default): in training mode logits = W * (f - batch mean) / sqrt(batch var +
// 1e-5) + b; with readout_norm: none, logits = W * f + b.
TEST(ExpansionTest, ReadoutStandardisesFeaturesUnlessToldNot) {
  at::Tensor x = at::rand({6, 3, 144, 144});
  for (const char* norm : {"batchnorm", "none"}) {
    ExpansionOptions o = Tiny(144);
    o.num_classes = 4;
    o.readout_norm = norm;
    Expansion m(o);
    m->train();
    ModelOutput out = m->ForwardUnit(x);
    at::Tensor w, b;
    for (const auto& p : m->named_parameters()) {
      if (p.key() == "readout.weight") w = p.value();
      if (p.key() == "readout.bias") b = p.value();
    }
    ASSERT_TRUE(w.defined() && b.defined());
    at::Tensor f = out.features;
    if (std::string(norm) == "batchnorm") {
      f = (f - f.mean(0)) / at::sqrt(f.var(0, /*unbiased=*/false) + 1e-5);
    }
    EXPECT_TRUE(at::allclose(out.logits, at::matmul(f, w.t()) + b, 1e-4, 1e-5)) << norm;
    EXPECT_EQ(m->parameters().size(), 2u) << norm;  // the norm has no affine parameters
  }
  EXPECT_FALSE(ParseExpansionOptions({{"readout_norm", "layer"}}).ok());
}

TEST(ExpansionTest, ForwardUndoesImageNetNormalisation) {
  Expansion m(Tiny(144));
  at::Tensor x01 = at::rand({1, 3, 144, 144});
  at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  at::Tensor stdv = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  EXPECT_TRUE(at::allclose(m->Forward((x01 - mean) / stdv).features, m->ForwardUnit(x01).features, 1e-3, 1e-4));
}

TEST(ExpansionTest, Layer1ConvolvesEachChannelSeparately) {
  // An image with only the green channel set: R's and B's 36 maps are the
  // response to a zero image (after normalisation: a constant), G's differ.
  ExpansionOptions o = Tiny(144);
  o.normalize = "none";
  Expansion raw(o);
  at::Tensor x = at::zeros({1, 3, 144, 144});
  x.select(1, 1).copy_(at::rand({144, 144}));
  at::Tensor y = raw->ForwardUnit(x).layers[0];
  EXPECT_EQ(y.narrow(1, 0, 36).abs().max().item<double>(), 0.0);
  EXPECT_GT(y.narrow(1, 36, 36).abs().max().item<double>(), 0.0);
  EXPECT_EQ(y.narrow(1, 72, 36).abs().max().item<double>(), 0.0);
}

TEST(ExpansionTest, WeightsAreDeterministicFromSeedOnly) {
  at::manual_seed(1);
  Expansion a(Tiny(144));
  at::manual_seed(999);  // the global RNG must not matter
  Expansion b(Tiny(144));
  for (int k = 1; k <= 5; ++k) EXPECT_TRUE(at::equal(a->weight(k), b->weight(k))) << k;
  ExpansionOptions o = Tiny(144);
  o.seed = 43;
  Expansion c(o);
  EXPECT_FALSE(at::equal(a->weight(2), c->weight(2)));
  // kaiming_uniform with torch defaults: U(-sqrt(6/fan_in), sqrt(6/fan_in)).
  const double bound = std::sqrt(6.0 / (108 * 49));
  EXPECT_LE(a->weight(2).abs().max().item<double>(), bound);
  EXPECT_GT(a->weight(2).abs().max().item<double>(), 0.95 * bound);
}

TEST(ExpansionTest, ParseRejectsBadKeys) {
  EXPECT_FALSE(ParseExpansionOptions({{"filters_5", 0}}).ok());
  EXPECT_FALSE(ParseExpansionOptions({{"image_size", 100}}).ok());
  EXPECT_FALSE(ParseExpansionOptions({{"bogus", 1}}).ok());
  auto o = ParseExpansionOptions({{"family", "expansion"}, {"image_size", 144}, {"filters_2", 16},
                                  {"filters_3", 8}, {"filters_4", 8}, {"filters_5", 30},
                                  {"init", "orthogonal"}});
  ASSERT_OK(o);
  EXPECT_EQ(o->filters_5, 30);
  Expansion m(*o);  // orthogonal init builds
  at::Tensor w = m->weight(2).flatten(1);  // [16, 5292]: orthonormal rows
  EXPECT_TRUE(at::allclose(at::matmul(w, w.t()), at::eye(16), 1e-4, 1e-4));
}

// Brute-force LOO: refit ridge with intercept on n-1 rows for each row.
at::Tensor BruteLoo(const at::Tensor& x, const at::Tensor& y, double alpha) {
  const int64_t n = x.size(0);
  at::Tensor out = at::empty_like(y);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor keep = at::cat({at::arange(0, i, at::kLong), at::arange(i + 1, n, at::kLong)});
    at::Tensor xt = x.index_select(0, keep), yt = y.index_select(0, keep);
    at::Tensor xm = xt.mean(0), ym = yt.mean(0);
    at::Tensor xc = xt - xm, yc = yt - ym;
    at::Tensor a = at::matmul(xc.t(), xc) + alpha * at::eye(x.size(1), x.options());
    at::Tensor beta = at::linalg_solve(a, at::matmul(xc.t(), yc));
    out[i] = at::matmul(x[i] - xm, beta) + ym;
  }
  return out;
}

double MeanR(const at::Tensor& a, const at::Tensor& b) {
  return at::nanmean(PearsonPerColumn(a, b)).item<double>();
}

TEST(RidgeLooTest, MatchesBruteForceOn50x20) {
  at::manual_seed(0);
  at::Tensor x = at::randn({50, 20}, at::kDouble);
  at::Tensor w = at::randn({20, 4}, at::kDouble);
  at::Tensor y = at::matmul(x, w) + 3.0 + 4.0 * at::randn({50, 4}, at::kDouble);
  RidgeBasis basis = MakeRidgeBasis(x, y);
  std::vector<double> alphas = {1e-3, 1e-1, 1, 10, 30, 100, 1000, 1e5};
  int brute_best = 0;
  double brute_score = -1e9;
  for (size_t i = 0; i < alphas.size(); ++i) {
    at::Tensor fast = RidgeLooPredictions(basis, alphas[i]);
    at::Tensor slow = BruteLoo(x, y, alphas[i]);
    EXPECT_TRUE(at::allclose(fast, slow, 1e-7, 1e-7)) << "alpha " << alphas[i];
    double s = MeanR(slow, y);
    if (s > brute_score) {
      brute_score = s;
      brute_best = static_cast<int>(i);
    }
  }
  RidgeCvResult cv = RidgeLooSelect(basis, alphas);
  EXPECT_EQ(cv.alpha_index, brute_best);
  EXPECT_NEAR(cv.alpha_scores[brute_best].item<double>(), brute_score, 1e-9);
}

TEST(RidgeLooTest, DualRegimeMatchesBruteForce) {
  at::manual_seed(1);
  at::Tensor x = at::randn({20, 50}, at::kDouble);
  at::Tensor y = at::matmul(x, at::randn({50, 3}, at::kDouble)) + at::randn({20, 3}, at::kDouble);
  RidgeBasis basis = MakeRidgeBasis(x, y);
  for (double a : {0.1, 10.0, 1000.0}) {
    EXPECT_TRUE(at::allclose(RidgeLooPredictions(basis, a), BruteLoo(x, y, a), 1e-7, 1e-7)) << a;
  }
  // The refit equals the closed-form primal solution with intercept.
  RidgeModel m = FitRidge(basis, 10.0);
  at::Tensor xc = x - x.mean(0), yc = y - y.mean(0);
  at::Tensor beta = at::linalg_solve(at::matmul(xc.t(), xc) + 10.0 * at::eye(50, at::kDouble),
                                     at::matmul(xc.t(), yc));
  EXPECT_TRUE(at::allclose(m.coef, beta, 1e-8, 1e-8));
  EXPECT_TRUE(at::allclose(m.Predict(x), at::matmul(xc, beta) + y.mean(0), 1e-8, 1e-8));
}

TEST(EncodingScoreTest, PlantedLinearMappingReachesNoiseCeiling) {
  at::manual_seed(2);
  const int64_t n_train = 600, n_test = 400, p = 30, t = 20;
  at::Tensor w = at::randn({p, t}, at::kDouble) / std::sqrt(double(p));  // signal var ~1 per unit
  at::Tensor xtr = at::randn({n_train, p}, at::kDouble), xte = at::randn({n_test, p}, at::kDouble);
  const double noise_sd = 0.8;
  at::Tensor ytr = at::matmul(xtr, w) + noise_sd * at::randn({n_train, t}, at::kDouble);
  at::Tensor yte = at::matmul(xte, w) + noise_sd * at::randn({n_test, t}, at::kDouble);
  // Ceiling per unit: r = sqrt(var_s / (var_s + var_n)) with var_s = |w_u|^2.
  at::Tensor var_s = w.pow(2).sum(0);
  const double ceiling = at::sqrt(var_s / (var_s + noise_sd * noise_sd)).mean().item<double>();
  EncodingOptions o;
  o.n_boot = 200;
  o.seed = 7;
  auto r = EncodingScore(xtr, ytr, xte, yte, o);
  ASSERT_OK(r);
  EXPECT_NEAR(r->mean_r, ceiling, 0.03);
  EXPECT_LT(r->bootstrap.low, r->mean_r + 1e-9);
  EXPECT_GT(r->bootstrap.high, r->mean_r - 1e-9);
  EXPECT_LE(r->alpha, 100.0);  // low noise, many samples: mild penalty
  // Pure-noise responses score near zero.
  auto z = EncodingScore(xtr, at::randn({n_train, t}, at::kDouble), xte,
                         at::randn({n_test, t}, at::kDouble), o);
  ASSERT_OK(z);
  EXPECT_LT(std::abs(z->mean_r), 0.1);
}

TEST(EncodingScoreTest, RejectsMisalignedRows) {
  auto r = EncodingScore(at::randn({10, 3}), at::randn({9, 2}), at::randn({5, 3}), at::randn({5, 2}), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BootstrapTest, ReproducibleWithSeed) {
  at::manual_seed(3);
  at::Tensor obs = at::randn({40, 5}, at::kDouble);
  at::Tensor pred = obs + at::randn({40, 5}, at::kDouble);
  BootstrapResult a = BootstrapScore(pred, obs, 100, 11);
  at::manual_seed(12345);  // global RNG does not matter
  BootstrapResult b = BootstrapScore(pred, obs, 100, 11);
  BootstrapResult c = BootstrapScore(pred, obs, 100, 12);
  EXPECT_TRUE(at::equal(a.samples, b.samples));
  EXPECT_EQ(a.low, b.low);
  EXPECT_FALSE(at::equal(a.samples, c.samples));
  EXPECT_LE(a.low, a.mean);
  EXPECT_GE(a.high, a.mean);
  // Stimulus axis: perfect predictions give r = 1 whatever is resampled.
  BootstrapResult s = BootstrapScore(obs, obs, 20, 1, "stimuli");
  EXPECT_NEAR(s.mean, 1.0, 1e-12);
}

TEST(PcaTest, ComponentsOrthonormalAndSpectrumExact) {
  at::manual_seed(4);
  // Independent columns with sds 3, 2, 1, 0.5: variances 9, 4, 1, 0.25.
  at::Tensor x = at::randn({5000, 4}, at::kDouble) * at::tensor({3.0, 2.0, 1.0, 0.5}, at::kDouble);
  PcaResult p = FitPca(x);
  EXPECT_TRUE(at::allclose(at::matmul(p.components, p.components.t()), at::eye(4, at::kDouble), 1e-10, 1e-10));
  at::Tensor expected = at::tensor({9.0, 4.0, 1.0, 0.25}, at::kDouble);
  EXPECT_TRUE(at::allclose(p.explained_variance, expected, 0.06, 0.0));
  const double pr = std::pow(14.25, 2) / (81 + 16 + 1 + 0.0625);
  EXPECT_NEAR(p.effective_dimensionality, pr, 0.1);
  EXPECT_NEAR(p.explained_variance_ratio.sum().item<double>(), 1.0, 1e-12);
  // Wide data (p > n) goes through the Gram path: still orthonormal.
  PcaResult w = FitPca(at::randn({10, 40}, at::kDouble), 5);
  EXPECT_EQ(w.components.size(0), 5);
  EXPECT_TRUE(at::allclose(at::matmul(w.components, w.components.t()), at::eye(5, at::kDouble), 1e-10, 1e-10));
  EXPECT_EQ(w.Project(at::randn({3, 40}, at::kDouble), 2).sizes(), (std::vector<int64_t>{3, 2}));
}

TEST(LinearProbeTest, SeparatesGaussianBlobs) {
  at::manual_seed(5);
  const int64_t per = 60;
  at::Tensor centres = at::tensor({0.0, 0.0, 4.0, 0.0, 0.0, 4.0}, at::kDouble).view({3, 2});
  at::Tensor labels = at::arange(3, at::kLong).repeat_interleave(per);
  at::Tensor x = centres.index_select(0, labels) + 0.5 * at::randn({3 * per, 2}, at::kDouble);
  at::Tensor xt = centres.index_select(0, labels) + 0.5 * at::randn({3 * per, 2}, at::kDouble);
  auto r = LinearProbe(x, labels, xt, labels, 3, {});
  ASSERT_OK(r);
  EXPECT_GT(r->train_accuracy, 0.98);
  EXPECT_GT(r->test_accuracy, 0.97);
  EXPECT_EQ(r->confusion.sum().item<int64_t>(), 3 * per);
  EXPECT_FALSE(LinearProbe(x, labels + 5, xt, labels, 3, {}).ok());
}

}  // namespace
}  // namespace topolab::science
