// SL_Rel / SL_Abs (spec §4) on hand-computed inputs and against an
// independent double-precision reference written with plain loops.
#include "worker/science/tdann/spatial_loss.h"

#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "tests/worker/science/tdann/assign_macro.h"

namespace topolab::science {
namespace {

// Reference: r via numpy-like corrcoef with std := 1 for constant units,
// D = 1/(d+1), strictly-lower-triangle pairs, Pearson over pairs.
struct Ref {
  double rel_half, rel_full, abs;
};
Ref Reference(const std::vector<std::vector<double>>& x /*[B][K]*/,
              const std::vector<std::pair<double, double>>& p) {
  const size_t b = x.size(), k = p.size();
  std::vector<double> mean(k, 0), sd(k, 0);
  for (size_t j = 0; j < k; ++j) {
    for (size_t i = 0; i < b; ++i) mean[j] += x[i][j] / b;
    for (size_t i = 0; i < b; ++i) sd[j] += (x[i][j] - mean[j]) * (x[i][j] - mean[j]) / b;
    sd[j] = std::sqrt(sd[j]);
    if (sd[j] == 0) sd[j] = 1;
  }
  std::vector<double> rv, dv;
  for (size_t i = 1; i < k; ++i) {
    for (size_t j = 0; j < i; ++j) {
      double c = 0;
      for (size_t t = 0; t < b; ++t) c += (x[t][i] - mean[i]) * (x[t][j] - mean[j]) / b;
      rv.push_back(std::max(-1.0, std::min(1.0, c / (sd[i] * sd[j]))));
      const double d = std::hypot(p[i].first - p[j].first, p[i].second - p[j].second);
      dv.push_back(1.0 / (d + 1.0));
    }
  }
  const size_t m = rv.size();
  double mr = 0, md = 0;
  for (size_t i = 0; i < m; ++i) { mr += rv[i] / m; md += dv[i] / m; }
  double num = 0, sr = 0, sdd = 0, ab = 0;
  for (size_t i = 0; i < m; ++i) {
    num += (rv[i] - mr) * (dv[i] - md);
    sr += (rv[i] - mr) * (rv[i] - mr);
    sdd += (dv[i] - md) * (dv[i] - md);
    ab += std::abs(rv[i] - dv[i]) / m;
  }
  const double corr = num / std::sqrt(sr * sdd);
  return {(1 - corr) / 2, 1 - corr, ab};
}

TEST(SpatialLossTest, HandComputedThreeUnits) {
  // Unit 1 = 2·unit 0 (r = 1), unit 2 reversed (r = −1 with both).
  at::Tensor x = at::tensor({1.0, 2.0, 4.0, 2.0, 4.0, 3.0, 3.0, 6.0, 2.0, 4.0, 8.0, 1.0},
                            at::kDouble).view({4, 3});
  // d10 = 3, d20 = 4, d21 = 5 -> D = 0.25, 0.2, 1/6.
  at::Tensor p = at::tensor({0.0, 0.0, 3.0, 0.0, 0.0, 4.0}, at::kDouble).view({3, 2});
  at::Tensor r = LowerTriangle(ResponseCorrelation(x));
  EXPECT_TRUE(at::allclose(r, at::tensor({1.0, -1.0, -1.0}, at::kDouble)));
  at::Tensor d = LowerTriangle(DistanceSimilarity(p));
  EXPECT_TRUE(at::allclose(d, at::tensor({0.25, 0.2, 1.0 / 6}, at::kDouble)));
  // numpy: (1 - corrcoef([1,-1,-1], [.25,.2,1/6])[0,1]) / 2
  EXPECT_NEAR(SpatialLossRel(x, p).item<double>(), 0.04116853225887651, 1e-12);
  EXPECT_NEAR(SpatialLossRel(x, p, RelativeForm::kFull).item<double>(), 2 * 0.04116853225887651,
              1e-12);
  EXPECT_NEAR(SpatialLossAbs(x, p).item<double>(), 1.038888888888889, 1e-12);
  SpatialLossOptions opt;
  opt.type = SpatialLossType::kAbsolute;
  EXPECT_NEAR(SpatialLoss(x, p, opt).item<double>(), 1.038888888888889, 1e-12);
}

TEST(SpatialLossTest, LowerTriangleOrderIsRowMajor) {
  at::Tensor m = at::arange(16, at::kFloat).view({4, 4});
  EXPECT_TRUE(at::equal(LowerTriangle(m), at::tensor({4.f, 8.f, 9.f, 12.f, 13.f, 14.f})));
}

TEST(SpatialLossTest, MatchesIndependentReferenceOnRandomInputs) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(42);
  for (int trial = 0; trial < 5; ++trial) {
    const int64_t b = 6 + trial, k = 5 + 3 * trial;
    at::Tensor x = at::randn({b, k}, gen, at::kDouble);
    at::Tensor p = at::rand({k, 2}, gen, at::kDouble) * 4;
    if (trial == 2) x.select(1, 1).fill_(0.0);   // a dead unit
    std::vector<std::vector<double>> xv(b, std::vector<double>(k));
    std::vector<std::pair<double, double>> pv(k);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < k; ++j) xv[i][j] = x[i][j].item<double>();
    for (int64_t j = 0; j < k; ++j) pv[j] = {p[j][0].item<double>(), p[j][1].item<double>()};
    const Ref ref = Reference(xv, pv);
    EXPECT_NEAR(SpatialLossRel(x, p).item<double>(), ref.rel_half, 1e-10) << trial;
    EXPECT_NEAR(SpatialLossRel(x, p, RelativeForm::kFull).item<double>(), ref.rel_full, 1e-10);
    EXPECT_NEAR(SpatialLossAbs(x, p).item<double>(), ref.abs, 1e-10);
    // float32 input gives the same to float precision.
    EXPECT_NEAR(SpatialLossRel(x.to(at::kFloat), p.to(at::kFloat)).item<double>(), ref.rel_half,
                1e-5);
  }
}

TEST(SpatialLossTest, ConstantUnitsHaveZeroCorrelation) {
  at::Tensor x = at::tensor({1.0, 0.5, 0.0, 2.0, 0.5, 0.0, 3.0, 0.5, 0.0, 5.0, 0.5, 0.0},
                            at::kFloat).view({4, 3});
  at::Tensor r = ResponseCorrelation(x);
  EXPECT_FALSE(at::isnan(r).any().item<bool>());
  EXPECT_FLOAT_EQ(r[0][0].item<float>(), 1.0f);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r[1][i].item<float>(), 0.0f);
    EXPECT_EQ(r[i][2].item<float>(), 0.0f);
  }
  // All units constant: r is all zero, corr(r, D) := 0, SL_Rel = 1/2.
  at::Tensor dead = at::zeros({8, 4}, at::kFloat).requires_grad_(true);
  at::Tensor p = at::rand({4, 2});
  at::Tensor loss = SpatialLossRel(dead, p);
  EXPECT_FLOAT_EQ(loss.item<float>(), 0.5f);
  loss.backward();
  EXPECT_FALSE(at::isnan(dead.grad()).any().item<bool>());
}

TEST(SpatialLossTest, CorrelationIsClampedToUnitRange) {
  at::Tensor x = at::tensor({1e-3, 1e-3 + 1e-9, 2e-3, 2e-3, 3e-3, 3e-3}, at::kFloat).view({3, 2});
  at::Tensor r = ResponseCorrelation(x);
  EXPECT_LE(r.max().item<float>(), 1.0f);
  EXPECT_GE(r.min().item<float>(), -1.0f);
}

TEST(SpatialLossTest, GradientFlowsToResponsesOnlyAndMatchesFiniteDifferences) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor x = at::randn({7, 6}, gen, at::kDouble).requires_grad_(true);
  at::Tensor p = (at::rand({6, 2}, gen, at::kDouble) * 3).requires_grad_(true);
  for (int form = 0; form < 3; ++form) {
    auto loss_of = [&](const at::Tensor& xx) {
      if (form == 2) return SpatialLossAbs(xx, p);
      return SpatialLossRel(xx, p, form == 0 ? RelativeForm::kHalf : RelativeForm::kFull);
    };
    if (x.grad().defined()) x.mutable_grad().zero_();
    at::Tensor loss = loss_of(x);
    loss.backward();
    ASSERT_TRUE(x.grad().defined());
    EXPECT_FALSE(p.grad().defined()) << "positions must be constants";
    at::Tensor g = x.grad().clone();
    EXPECT_GT(g.abs().max().item<double>(), 0);
    at::NoGradGuard no_grad;
    const double eps = 1e-6;
    for (int64_t i = 0; i < 7; i += 3) {
      for (int64_t j = 0; j < 6; j += 2) {
        at::Tensor xp = x.detach().clone(), xm = x.detach().clone();
        xp[i][j] += eps;
        xm[i][j] -= eps;
        const double fd = (loss_of(xp).item<double>() - loss_of(xm).item<double>()) / (2 * eps);
        EXPECT_NEAR(g[i][j].item<double>(), fd, 1e-6) << "form " << form << " at " << i << "," << j;
      }
    }
  }
}

TEST(SpatialLossTest, LayerLossGathersPoolUnitsFromFlattenedBlock) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor block = at::randn({5, 2, 3, 3}, gen);   // U = 18
  at::Tensor pos = at::rand({18, 2}, gen) * 2;
  at::Tensor pool = at::tensor({0, 4, 9, 17}, at::kLong).view({1, 4});
  at::Tensor loss = LayerSpatialLoss(block, pos, pool, 1, gen, SpatialLossOptions());
  at::Tensor idx = pool[0];
  at::Tensor expected = SpatialLossRel(block.flatten(1).index_select(1, idx),
                                       pos.index_select(0, idx));
  EXPECT_NEAR(loss.item<float>(), expected.item<float>(), 1e-6);
  // Averaging several draws from a one-row pool gives the same value.
  at::Tensor loss3 = LayerSpatialLoss(block, pos, pool, 3, gen, SpatialLossOptions());
  EXPECT_NEAR(loss3.item<float>(), expected.item<float>(), 1e-6);
}

TEST(SpatialLossTest, ParsesOptionNames) {
  EXPECT_EQ(ParseSpatialLossType("abs").value(), SpatialLossType::kAbsolute);
  EXPECT_EQ(ParseRelativeForm("full").value(), RelativeForm::kFull);
  EXPECT_EQ(ParseRelativeForm("double").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace topolab::science
