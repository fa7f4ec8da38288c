// SwapOpt (spec §3): kernels against literal formulas, the accept rule, the
// deterministic parallel schedule, and recovery of a planted smooth layout.
#include "worker/science/tdann/swapopt.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "tests/worker/science/tdann/assign_macro.h"
#include "worker/science/tdann/swapopt_kernels.h"

namespace topolab::science {
namespace {

double Pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) { ma += a[i] / n; mb += b[i] / n; }
  double num = 0, va = 0, vb = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) * (a[i] - ma);
    vb += (b[i] - mb) * (b[i] - mb);
  }
  return num / std::sqrt(va * vb);
}

// The OFFICIAL two-row SwapCost, written literally.
double TwoRowCost(const std::vector<float>& r, const std::vector<float>& qx,
                  const std::vector<float>& qy, int64_t n, int64_t a, int64_t b) {
  std::vector<double> rv, dv;
  for (int64_t row : {a, b}) {
    for (int64_t j = 0; j < n; ++j) {
      rv.push_back(r[row * n + j]);
      dv.push_back(1.0 / (std::hypot(double(qx[row]) - qx[j], double(qy[row]) - qy[j]) + 1.0));
    }
  }
  return (1 - Pearson(rv, dv)) / 2;
}

TEST(SwapOptKernelsTest, GramMatrixMatchesMatmul) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  for (int64_t n : {1, 3, 4, 7, 33}) {
    at::Tensor z = at::randn({n, 37}, gen);
    std::vector<float> r(n * n);
    kernels::GramMatrix(z.data_ptr<float>(), n, 37, r.data());
    at::Tensor expected = z.matmul(z.t());
    at::Tensor got = at::from_blob(r.data(), {n, n}, at::kFloat);
    EXPECT_TRUE(at::allclose(got, expected, 1e-4, 1e-4)) << n;
  }
}

TEST(SwapOptKernelsTest, SwapSumsGiveLiteralTwoRowCostsBeforeAndAfter) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const int64_t n = 9;
  at::Tensor x = at::randn({n, n}, gen);
  at::Tensor rt = at::clamp(x.matmul(x.t()) / 9.0, -1, 1);
  std::vector<float> r(rt.data_ptr<float>(), rt.data_ptr<float>() + n * n);
  at::Tensor q = at::rand({n, 2}, gen) * 5;
  std::vector<float> qx(n), qy(n);
  for (int64_t i = 0; i < n; ++i) { qx[i] = q[i][0].item<float>(); qy[i] = q[i][1].item<float>(); }
  for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {3, 7}, {8, 2}}) {
    const kernels::SwapSums s =
        kernels::ComputeSwapSums(qx.data(), qy.data(), n, a, b, &r[a * n], &r[b * n]);
    double sr = 0, srr = 0;
    for (int64_t j = 0; j < n; ++j) {
      sr += double(r[a * n + j]) + r[b * n + j];
      srr += double(r[a * n + j]) * r[a * n + j] + double(r[b * n + j]) * r[b * n + j];
    }
    const double m = 2.0 * n;
    auto cost = [&](double rd) {
      return (1 - (rd - sr * s.d / m) /
                      std::sqrt((srr - sr * sr / m) * (s.dd - s.d * s.d / m))) / 2;
    };
    EXPECT_NEAR(cost(s.rd_before), TwoRowCost(r, qx, qy, n, a, b), 1e-9);
    std::vector<float> sx = qx, sy = qy;
    std::swap(sx[a], sx[b]);
    std::swap(sy[a], sy[b]);
    EXPECT_NEAR(cost(s.rd_before + s.delta), TwoRowCost(r, sx, sy, n, a, b), 1e-9);
    // Full-window Σ r·d changes by the same delta.
    const auto w0 = kernels::ComputeWindowSums(qx.data(), qy.data(), n, r.data());
    const auto w1 = kernels::ComputeWindowSums(sx.data(), sy.data(), n, r.data());
    EXPECT_NEAR(w1.rd - w0.rd, s.delta, 1e-9);
    EXPECT_NEAR(w1.d, w0.d, 1e-9);    // distances are only permuted
    EXPECT_NEAR(w1.dd, w0.dd, 1e-9);
  }
}

// A planted problem: units on a side×side lattice (1 mm apart) whose
// responses are sums of smooth random bumps, so near units correlate.
struct Planted {
  at::Tensor responses;   // [images, U]
  at::Tensor true_pos;    // [U, 2]
  at::Tensor scrambled;   // a random row permutation of true_pos
};
Planted MakePlanted(int64_t side, int64_t images, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor g = at::arange(side, at::kFloat);
  at::Tensor pos = at::stack({g.repeat({side}), g.repeat_interleave(side)}, 1);  // [U,2]
  const int64_t bumps = 24;
  at::Tensor centres = at::rand({bumps, 2}, gen) * static_cast<double>(side);
  at::Tensor d2 = (pos.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(-1);  // [U, bumps]
  at::Tensor basis = at::exp(-d2 / (2 * 2.5 * 2.5));
  at::Tensor coeff = at::randn({images, bumps}, gen);
  at::Tensor resp = coeff.matmul(basis.t()) + 0.05 * at::randn({images, side * side}, gen);
  at::Tensor perm = at::randperm(side * side, gen, at::kLong);
  return {resp.contiguous(), pos, pos.index_select(0, perm).contiguous()};
}

// corr over all unit pairs between response correlation and 1/(d+1).
double LayoutScore(const at::Tensor& responses, const at::Tensor& pos) {
  at::Tensor x = responses.to(at::kDouble);
  x = x - x.mean(0);
  x = x / x.norm(2, {0}, true);
  at::Tensor r = x.t().matmul(x);
  at::Tensor p = pos.to(at::kDouble);
  at::Tensor d = 1.0 / ((p.unsqueeze(1) - p.unsqueeze(0)).pow(2).sum(-1).sqrt() + 1.0);
  at::Tensor mask = at::ones_like(r, at::kBool).tril(-1);
  at::Tensor rv = r.masked_select(mask), dv = d.masked_select(mask);
  rv = rv - rv.mean();
  dv = dv - dv.mean();
  return ((rv * dv).sum() / (rv.norm() * dv.norm())).item<double>();
}

// Mean response correlation of unit pairs at most `radius` mm apart.
double NearPairCorrelation(const at::Tensor& responses, const at::Tensor& pos, double radius) {
  at::Tensor x = responses.to(at::kDouble);
  x = x - x.mean(0);
  x = x / x.norm(2, {0}, true);
  at::Tensor r = x.t().matmul(x);
  at::Tensor p = pos.to(at::kDouble);
  at::Tensor d = (p.unsqueeze(1) - p.unsqueeze(0)).pow(2).sum(-1).sqrt();
  at::Tensor mask = (d <= radius).logical_and(at::ones_like(r, at::kBool).tril(-1));
  return r.masked_select(mask).mean().item<double>();
}

std::vector<std::pair<float, float>> SortedRows(const at::Tensor& pos) {
  std::vector<std::pair<float, float>> rows;
  auto a = pos.accessor<float, 2>();
  for (int64_t i = 0; i < pos.size(0); ++i) rows.emplace_back(a[i][0], a[i][1]);
  std::sort(rows.begin(), rows.end());
  return rows;
}

TEST(SwapOptTest, RecoversScrambledSmoothLayoutAndCostNeverRises) {
  Planted pl = MakePlanted(24, 80, 7);
  const double truth = LayoutScore(pl.responses, pl.true_pos);
  const double scrambled = LayoutScore(pl.responses, pl.scrambled);
  ASSERT_GT(truth, 0.3);
  ASSERT_LT(std::abs(scrambled), 0.05);
  SwapOptOptions opt;
  opt.num_windows = 4000;
  opt.swaps_per_window = 300;
  opt.width_mm = 7.0;
  opt.seed = 3;
  opt.threads = 2;
  opt.record_windows = true;
  ASSERT_OK_AND_ASSIGN(SwapOptResult res, RunSwapOpt(pl.responses, pl.scrambled, opt));
  // Near pairs (lattice neighbours) become strongly correlated again, and
  // the global distance/similarity correlation rises far above chance
  // (local swaps cannot undo the global scramble, only make it smooth).
  const double near_truth = NearPairCorrelation(pl.responses, pl.true_pos, 1.5);
  const double near_scrambled = NearPairCorrelation(pl.responses, pl.scrambled, 1.5);
  const double near_after = NearPairCorrelation(pl.responses, res.positions, 1.5);
  const double after = LayoutScore(pl.responses, res.positions);
  std::printf("planted: near-pair r truth %.3f scrambled %.3f after %.3f; "
              "layout score truth %.3f scrambled %.3f after %.3f\n",
              near_truth, near_scrambled, near_after, truth, scrambled, after);
  EXPECT_GT(near_after, 0.6 * near_truth);
  EXPECT_LT(near_scrambled, 0.2 * near_truth);
  EXPECT_GT(after, 0.25 * truth);
  EXPECT_LT(res.mean_cost_after, res.mean_cost_before);
  ASSERT_FALSE(res.windows.empty());
  for (const SwapWindowRecord& w : res.windows) {
    EXPECT_LE(w.cost_after, w.cost_before + 1e-9) << "window " << w.index;
    EXPECT_GE(w.units, 5);
    EXPECT_LE(w.units, 500);
  }
  EXPECT_GT(res.swaps_accepted, 0);
  EXPECT_EQ(res.swaps_attempted, res.windows_used * 300);
  // Output is a permutation of the input rows.
  EXPECT_EQ(SortedRows(res.positions), SortedRows(pl.scrambled));
  // On the same windows, the local cost fell.
  ASSERT_OK_AND_ASSIGN(double before_cost,
                       MeanLocalCost(pl.responses, pl.scrambled, 7.0, 300, 500, 5, 99));
  ASSERT_OK_AND_ASSIGN(double after_cost,
                       MeanLocalCost(pl.responses, res.positions, 7.0, 300, 500, 5, 99));
  EXPECT_LT(after_cost, before_cost - 0.05);
}

TEST(SwapOptTest, FullWindowCostAlsoImproves) {
  Planted pl = MakePlanted(16, 48, 8);
  SwapOptOptions opt;
  opt.num_windows = 800;
  opt.swaps_per_window = 200;
  opt.width_mm = 6.0;
  opt.cost = SwapCost::kFullWindow;
  opt.record_windows = true;
  ASSERT_OK_AND_ASSIGN(SwapOptResult res, RunSwapOpt(pl.responses, pl.scrambled, opt));
  for (const SwapWindowRecord& w : res.windows) EXPECT_LE(w.cost_after, w.cost_before + 1e-9);
  EXPECT_GT(LayoutScore(pl.responses, res.positions),
            LayoutScore(pl.responses, pl.scrambled) + 0.1);
}

TEST(SwapOptTest, ResultIsIndependentOfThreadCount) {
  Planted pl = MakePlanted(20, 32, 9);
  SwapOptOptions opt;
  opt.num_windows = 600;
  opt.swaps_per_window = 100;
  opt.width_mm = 4.0;
  opt.seed = 17;
  opt.threads = 1;
  ASSERT_OK_AND_ASSIGN(SwapOptResult one, RunSwapOpt(pl.responses, pl.scrambled, opt));
  opt.threads = 2;
  ASSERT_OK_AND_ASSIGN(SwapOptResult two, RunSwapOpt(pl.responses, pl.scrambled, opt));
  opt.threads = 4;
  ASSERT_OK_AND_ASSIGN(SwapOptResult four, RunSwapOpt(pl.responses, pl.scrambled, opt));
  EXPECT_TRUE(at::equal(one.positions, two.positions));
  EXPECT_TRUE(at::equal(one.positions, four.positions));
  EXPECT_EQ(one.swaps_accepted, two.swaps_accepted);
  EXPECT_DOUBLE_EQ(one.mean_cost_after, two.mean_cost_after);
  opt.seed = 18;
  ASSERT_OK_AND_ASSIGN(SwapOptResult other, RunSwapOpt(pl.responses, pl.scrambled, opt));
  EXPECT_FALSE(at::equal(one.positions, other.positions));
}

TEST(SwapOptTest, NonWorseAcceptsTiesStrictDoesNot) {
  // Two response patterns shared by many units: swapping two units with the
  // same pattern leaves every cost exactly equal.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  at::Tensor patterns = at::randn({20, 2}, gen);
  at::Tensor which = at::arange(64, at::kLong).remainder(2);
  at::Tensor responses = patterns.index_select(1, which).contiguous();
  at::Tensor g = at::arange(8, at::kFloat);
  at::Tensor pos = at::stack({g.repeat({8}), g.repeat_interleave(8)}, 1);
  SwapOptOptions opt;
  opt.num_windows = 50;
  opt.swaps_per_window = 50;
  opt.width_mm = 8.0;   // one window = the whole sheet
  ASSERT_OK_AND_ASSIGN(SwapOptResult strict, RunSwapOpt(responses, pos, opt));
  opt.accept = SwapAccept::kNonWorse;
  ASSERT_OK_AND_ASSIGN(SwapOptResult nonworse, RunSwapOpt(responses, pos, opt));
  EXPECT_GT(nonworse.swaps_accepted, strict.swaps_accepted);
}

TEST(SwapOptTest, SubsetsLargeWindowsAndSkipsSmallOnes) {
  Planted pl = MakePlanted(30, 16, 10);   // 900 units
  SwapOptOptions opt;
  opt.num_windows = 20;
  opt.swaps_per_window = 10;
  opt.width_mm = 29.0;      // every window holds ~900 units
  opt.max_units = 100;
  opt.record_windows = true;
  ASSERT_OK_AND_ASSIGN(SwapOptResult big, RunSwapOpt(pl.responses, pl.true_pos, opt));
  ASSERT_EQ(big.windows.size(), 20u);
  for (const auto& w : big.windows) EXPECT_EQ(w.units, 100);
  opt.width_mm = 0.5;       // at most one unit per window: all skipped
  opt.max_units = 500;
  ASSERT_OK_AND_ASSIGN(SwapOptResult tiny, RunSwapOpt(pl.responses, pl.true_pos, opt));
  EXPECT_EQ(tiny.windows_used, 0);
  EXPECT_TRUE(at::equal(tiny.positions, pl.true_pos));
  EXPECT_TRUE(std::isnan(tiny.mean_cost_before));
}

TEST(SwapOptTest, ZeroSwapsKeepsPositions) {
  Planted pl = MakePlanted(10, 16, 11);
  SwapOptOptions opt;
  opt.num_windows = 10;
  opt.swaps_per_window = 0;
  opt.width_mm = 4;
  ASSERT_OK_AND_ASSIGN(SwapOptResult res, RunSwapOpt(pl.responses, pl.scrambled, opt));
  EXPECT_TRUE(at::equal(res.positions, pl.scrambled));
  EXPECT_DOUBLE_EQ(res.mean_cost_before, res.mean_cost_after);
}

TEST(SwapOptTest, ProgressAndCancellation) {
  Planted pl = MakePlanted(12, 16, 12);
  SwapOptOptions opt;
  opt.num_windows = 400;
  opt.swaps_per_window = 5;
  opt.width_mm = 4;
  int64_t last = -1;
  opt.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 400);
    EXPECT_GE(done, last);
    last = done;
  };
  ASSERT_OK(RunSwapOpt(pl.responses, pl.scrambled, opt).status());
  EXPECT_EQ(last, 400);
  for (int threads : {1, 2}) {
    int polls = 0;
    opt.threads = threads;
    opt.progress = nullptr;
    opt.cancelled = [&] { return ++polls > 3; };
    EXPECT_EQ(RunSwapOpt(pl.responses, pl.scrambled, opt).status().code(),
              absl::StatusCode::kCancelled);
  }
}

TEST(SwapOptTest, RejectsBadInput) {
  SwapOptOptions opt;
  opt.width_mm = 1;
  at::Tensor r = at::randn({10, 6});
  EXPECT_EQ(RunSwapOpt(r, at::zeros({5, 2}), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSwapOpt(r, at::zeros({6, 3}), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSwapOpt(at::randn({1, 6}), at::zeros({6, 2}), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  at::Tensor bad = r.clone();
  bad[0][0] = std::nan("");
  EXPECT_EQ(RunSwapOpt(bad, at::zeros({6, 2}), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  opt.width_mm = 0;
  EXPECT_EQ(RunSwapOpt(r, at::zeros({6, 2}), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSwapAccept("nonworse").value(), SwapAccept::kNonWorse);
  EXPECT_EQ(ParseSwapCost("full_window").value(), SwapCost::kFullWindow);
  EXPECT_EQ(ParseSwapCost("x").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace topolab::science
