// Hand-checked analyses: closed forms for circular variance and t-values,
// planted von Mises curves, pinwheels and patches, k-means + Hungarian on
// toys, and streaming accumulators against batch formulas.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "worker/science/analysis/accumulators.h"
#include "worker/science/analysis/maps.h"
#include "worker/science/analysis/tuning.h"
#include "worker/science/analysis/wiring.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

at::Tensor CosineCurve(double a, double pref_deg) {
  at::Tensor th = at::arange(8, at::kDouble) * (kPi / 8);
  return 1 + a * at::cos(2 * (th - pref_deg * kPi / 180));
}

TEST(CircularVarianceTest, CosineTuningMatchesClosedForm) {
  // R_k = 1 + a cos(2(theta_k - phi)): |sum R e^{2i theta}| = 4a, sum R = 8.
  at::Tensor curves = at::stack({CosineCurve(0.5, 30), CosineCurve(1.0, 100), CosineCurve(0, 0)});
  at::Tensor cv = CircularVariance(curves);
  EXPECT_NEAR(cv[0].item<double>(), 1 - 0.5 / 2, 1e-12);
  EXPECT_NEAR(cv[1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(cv[2].item<double>(), 1.0, 1e-12);
  at::Tensor onehot = at::zeros({1, 8}, at::kDouble);
  onehot[0][3] = 2;
  EXPECT_NEAR(CircularVariance(onehot)[0].item<double>(), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(CircularVariance(at::zeros({1, 8}))[0].item<double>()));
}

TEST(PreferredOrientationTest, VonMisesRecoversPlantedPreference) {
  std::vector<double> prefs = {0, 30, 67, 100, 151, 175};
  std::vector<at::Tensor> rows;
  at::Tensor th = at::arange(8, at::kDouble) * (kPi / 8);
  for (double p : prefs) rows.push_back(3 * at::exp(2.0 * at::cos(2 * (th - p * kPi / 180))));
  at::Tensor pref = PreferredOrientationVonMises(at::stack(rows));
  const double step = 180.0 / 49;
  for (size_t i = 0; i < prefs.size(); ++i) {
    double d = std::fabs(pref[i].item<double>() - prefs[i]);
    d = std::min(d, 180 - d);
    EXPECT_LE(d, step) << "planted " << prefs[i] << " got " << pref[i].item<double>();
    // Results sit on the 50-point grid.
    double k = pref[i].item<double>() / step;
    EXPECT_NEAR(k, std::round(k), 1e-9);
  }
  at::Tensor am = PreferredOrientationArgmax(at::stack(rows));
  EXPECT_DOUBLE_EQ(am[1].item<double>(), 22.5);  // 30 -> nearest sample 22.5
  EXPECT_DOUBLE_EQ(am[3].item<double>(), 90.0);
}

TEST(PreferredOrientationTest, ChunkedFitEqualsPerUnitFit) {
  // More units than one fitting chunk (8192): each unit's fit is independent.
  at::manual_seed(4);
  at::Tensor curves = at::rand({9000, 8}, at::kDouble);
  at::Tensor all = PreferredOrientationVonMises(curves);
  at::Tensor tail = PreferredOrientationVonMises(curves.narrow(0, 8990, 10));
  EXPECT_TRUE(at::equal(all.narrow(0, 8990, 10), tail));
  EXPECT_EQ(all.size(0), 9000);
}

TEST(SelectivityTest, CountsSelectiveAmongResponsiveUnits) {
  // Unit 0: sharp; unit 1: flat; unit 2: silent (excluded by the mean).
  at::Tensor curves = at::zeros({3, 8}, at::kDouble);
  curves[0][2] = 8;
  curves[1].fill_(4);
  at::Tensor cv = CircularVariance(curves);
  SelectivityOptions o;
  o.reference_median_peak = 4.0;  // median peak 4 -> scale 1
  SelectivityResult r = SelectiveFraction(curves, cv, o);
  EXPECT_DOUBLE_EQ(r.scale, 1.0);
  EXPECT_EQ(r.responsive, 1);  // unit 0 mean 1.0 is not > 1; unit 1 mean 4
  EXPECT_EQ(r.selective, 0);
  o.min_mean = 0.5;
  r = SelectiveFraction(curves, cv, o);
  EXPECT_EQ(r.responsive, 2);
  EXPECT_EQ(r.selective, 1);
  EXPECT_DOUBLE_EQ(r.selective_fraction, 0.5);
}

TEST(StreamingTest, GratingAccumulatorEqualsBatchMeans) {
  at::manual_seed(0);
  const int64_t u = 7;
  at::Tensor resp = at::rand({kNumGratings, u}, at::kFloat);
  GratingAccumulator acc(u);
  // Batches of uneven size, in shuffled order.
  std::vector<std::pair<int64_t, int64_t>> slices = {{600, 40}, {0, 33}, {33, 300}, {333, 267}};
  for (auto [s, n] : slices) acc.AddRange(resp.narrow(0, s, n), s);
  GratingTuning t = acc.Result();
  at::Tensor r5 = resp.to(at::kDouble).view({8, 8, 5, 2, u});
  EXPECT_TRUE(at::allclose(t.orientation, r5.mean({1, 2, 3}).t(), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(t.frequency, r5.mean({0, 2, 3}).t(), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(t.colour, r5.mean({0, 1, 2}).t(), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(t.orientation_phase, r5.mean({1, 3}).permute({2, 0, 1}), 1e-12,
                           1e-12));
  EXPECT_TRUE(at::allclose(t.mean, resp.to(at::kDouble).mean(0), 1e-12, 1e-12));
}

TEST(StreamingTest, CategoryTValuesEqualBatchWelchT) {
  at::manual_seed(1);
  const int64_t n = 90, u = 5, k = 6;
  at::Tensor resp = at::randn({n, u}, at::kDouble) + at::arange(u, at::kDouble);
  at::Tensor labels = at::randint(0, k, {n}, at::kLong);
  labels.narrow(0, 0, k).copy_(at::arange(k, at::kLong));  // every category present
  ConditionAccumulator acc(k, u, /*second_moment=*/true);
  for (int64_t s = 0; s < n; s += 16) {
    int64_t c = std::min<int64_t>(16, n - s);
    acc.Add(resp.narrow(0, s, c).to(at::kHalf).to(at::kDouble), labels.narrow(0, s, c));
  }
  ConditionAccumulator exact(k, u, true);
  exact.Add(resp, labels);
  at::Tensor on = (labels == 1) | (labels == 4);
  at::Tensor streamed = DomainTValues(exact, {1, 4});
  EXPECT_TRUE(at::allclose(streamed, WelchT(resp, on), 1e-9, 1e-9));
  // Streaming float16 batches only loses the float16 rounding.
  EXPECT_TRUE(at::allclose(DomainTValues(acc, {1, 4}), streamed, 1e-2, 1e-2));
}

TEST(TValuesTest, MatchesHandComputedWelchT) {
  // Unit 0: on = {1, 3} (mean 2, var 1), off = {0, 2, 4, 6} (mean 3, var 5)
  // t = (2 - 3) / sqrt(1/2 + 5/4) = -1/sqrt(1.75). Unit 1 is constant -> 0.
  at::Tensor resp = at::tensor({1.0, 5.0, 3.0, 5.0, 0.0, 5.0, 2.0, 5.0, 4.0, 5.0, 6.0, 5.0},
                               at::kDouble)
                        .view({6, 2});
  at::Tensor on = at::tensor({1, 1, 0, 0, 0, 0}, at::kLong).to(at::kBool);
  at::Tensor t = WelchT(resp, on);
  EXPECT_NEAR(t[0].item<double>(), -1 / std::sqrt(1.75), 1e-12);
  EXPECT_EQ(t[1].item<double>(), 0.0);
  ConditionAccumulator acc(3, 2, true);
  acc.Add(resp, at::tensor({0, 0, 1, 1, 2, 2}, at::kLong));
  EXPECT_NEAR(DomainTValues(acc, {0})[0].item<double>(), -1 / std::sqrt(1.75), 1e-12);
}

TEST(SmoothnessTest, CurveSmoothnessClosedForms) {
  EXPECT_DOUBLE_EQ(CurveSmoothness({1, 2, 4}), 0.75);
  EXPECT_DOUBLE_EQ(CurveSmoothness({0, 0, 0}), 1.0);
  EXPECT_DOUBLE_EQ(CurveSmoothness({2, NAN, 5}), 0.0);  // truncated at the NaN
  EXPECT_TRUE(std::isnan(CurveSmoothness({NAN, 1})));
}

TEST(SmoothnessTest, SmoothMapsScoreHigherThanRandomOnes) {
  at::manual_seed(2);
  const int64_t u = 3000;
  at::Tensor pos = at::rand({u, 2}, at::kDouble) * 20;
  at::Tensor smooth = at::fmod(pos.select(1, 0) * 9, 180.0);  // orientation drifts 9 deg/mm
  at::Tensor random = at::rand({u}, at::kDouble) * 180;
  SmoothnessOptions o;
  o.period = 180;
  o.repetitions = 4;
  o.sample_size = 500;
  SmoothnessResult s = DistanceSmoothness(smooth, pos, at::Tensor(), o);
  SmoothnessResult r = DistanceSmoothness(random, pos, at::Tensor(), o);
  EXPECT_GT(s.score, 0.7);
  EXPECT_LT(r.score, 0.35);
  EXPECT_EQ(s.curves.sizes(), (std::vector<int64_t>{4, 9}));
  // Differences wrap into [0, 90].
  EXPECT_LE(at::nan_to_num(r.curves, 0).max().item<double>(), 90.0);
  // The first bin of the smooth map is near 0; its chance curve is flat ~45.
  EXPECT_LT(s.curves[0][0].item<double>(), 10.0);
  EXPECT_NEAR(at::nanmean(s.chance_curves).item<double>(), 45.0, 8.0);
}

// Orientation field with planted pinwheels: theta = sum_i s_i arg(z - z_i) / 2.
at::Tensor PinwheelField(const at::Tensor& pos, const std::vector<std::array<double, 3>>& pw) {
  at::Tensor th = at::zeros({pos.size(0)}, at::kDouble);
  for (const auto& p : pw) {
    th += p[2] * at::atan2(pos.select(1, 1) - p[1], pos.select(1, 0) - p[0]) * (90.0 / kPi);
  }
  return at::remainder(th, 180.0);
}

TEST(PinwheelTest, WindingOfAFullTurnIsOneHalf) {
  // Ring NW, N, NE, E, SE, S, SW, W at 0, 22.5, ..., 157.5 deg.
  at::Tensor a = at::tensor({0.0, 22.5, 45.0, 157.5, 0.0, 67.5, 135.0, 112.5, 90.0}, at::kDouble)
                     .view({3, 3});
  EXPECT_NEAR(WindingNumbers(a, true)[1][1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(WindingNumbers(a, false)[1][1].item<double>(), 157.5 / 360, 1e-12);
  EXPECT_TRUE(std::isnan(WindingNumbers(a, true)[0][0].item<double>()));
}

TEST(PinwheelTest, CountsPlantedPinwheels) {
  // Dense unit grid over [0, 20] mm.
  at::Tensor g = at::arange(0, 20.0001, 0.1, at::kDouble);
  at::Tensor pos = at::stack({g.repeat({g.size(0)}), g.repeat_interleave(g.size(0))}, 1);
  std::vector<std::array<double, 3>> planted = {
      {5.13, 5.27, +1}, {14.71, 5.39, -1}, {5.31, 14.62, -1}, {14.57, 14.83, +1}};
  at::Tensor pref = PinwheelField(pos, planted);
  PinwheelResult r = FindPinwheels(pref, pos);
  EXPECT_EQ(r.total, 4);
  EXPECT_EQ(r.positive, 2);
  EXPECT_EQ(r.negative, 2);
  for (const auto& p : planted) {
    bool found = false;
    for (const Pinwheel& q : r.pinwheels) {
      if (std::hypot(q.x_mm - p[0], q.y_mm - p[1]) < 0.7) {
        found = true;
        EXPECT_EQ(q.sign, static_cast<int>(p[2]));
      }
    }
    EXPECT_TRUE(found) << p[0] << "," << p[1];
  }
  EXPECT_NEAR(r.extent_mm, 20.0, 1e-6);
  EXPECT_NEAR(r.density, 4 / std::pow(20.0 / 3.5, 2), 1e-9);
  // A map without singularities has none.
  EXPECT_EQ(FindPinwheels(at::remainder(pos.select(1, 0) * 5, 180.0), pos).total, 0);
}

TEST(ComponentsTest, EightConnectivity) {
  // 1 . . .
  // 1 . . .
  // . 1 . 1
  // 1 . . .      diagonal steps join the left column; (2,3) is alone.
  at::Tensor m = at::tensor({1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0}, at::kLong)
                     .to(at::kBool)
                     .view({4, 4});
  std::vector<int64_t> sizes;
  at::Tensor l = LabelComponents8(m, &sizes);
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(l[3][0].item<int64_t>(), 0);
  EXPECT_EQ(l[2][1].item<int64_t>(), 0);
  EXPECT_EQ(l[2][3].item<int64_t>(), 1);
  EXPECT_EQ(l[0][1].item<int64_t>(), -1);
}

TEST(PatchTest, FindsAPlantedBlobAndRejectsASpeck) {
  at::Tensor g = at::arange(0, 50.0001, 1.0, at::kDouble);
  at::Tensor pos = at::stack({g.repeat({g.size(0)}), g.repeat_interleave(g.size(0))}, 1);
  at::Tensor dx = pos.select(1, 0) - 20, dy = pos.select(1, 1) - 25;
  at::Tensor t = at::where(dx * dx + dy * dy <= 64, at::full_like(dx, 10.0), at::zeros_like(dx));
  at::Tensor ex = pos.select(1, 0) - 42, ey = pos.select(1, 1) - 42;
  t = at::where(ex * ex + ey * ey <= 2.5, at::full_like(dx, 10.0), t);  // tiny speck
  PatchResult r = FindPatches(t, pos);
  ASSERT_EQ(r.patches.size(), 1u);
  const Patch& p = r.patches[0];
  EXPECT_NEAR(p.centroid_x, 20, 0.5);
  EXPECT_NEAR(p.centroid_y, 25, 0.5);
  // Smoothed disc of radius 8 crosses t = 2 at r ~ 10 mm -> area ~ 300 mm^2.
  EXPECT_GT(p.area_mm2, 200);
  EXPECT_LT(p.area_mm2, 450);
  const int64_t centre = 25 * 51 + 20;
  EXPECT_TRUE(std::binary_search(p.units.begin(), p.units.end(), centre));
  // The speck survives thresholding but is far below 100 mm^2.
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_LT(r.rejected[0].area_mm2, 100);
}

TEST(RsmTest, CorrelatesClassPatterns) {
  at::Tensor m = at::tensor({1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 3.0, 2.0, 1.0}, at::kDouble).view({3, 3});
  at::Tensor r = ClassRsm(m);
  EXPECT_NEAR(r[0][1].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r[0][2].item<double>(), -1.0, 1e-12);
  EXPECT_NEAR(r[2][2].item<double>(), 1.0, 1e-12);
}

TEST(WiringTest, KMeansFindsSeparatedClusters) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n(0, 0.1);
  std::vector<Point2> pts;
  const Point2 centres[3] = {{0, 0}, {5, 5}, {10, 0}};
  for (const auto& c : centres)
    for (int i = 0; i < 30; ++i) pts.push_back({c[0] + n(rng), c[1] + n(rng)});
  KMeansResult r = KMeans2d(pts, 3, 7);
  for (const auto& c : centres) {
    double best = 1e9;
    for (const auto& k : r.centroids) best = std::min(best, std::hypot(k[0] - c[0], k[1] - c[1]));
    EXPECT_LT(best, 0.1);
  }
  EXPECT_LT(r.inertia, 90 * 0.05);
  EXPECT_EQ(r.assignment[0], r.assignment[29]);
  EXPECT_NE(r.assignment[0], r.assignment[30]);
}

TEST(WiringTest, HungarianFindsTheOptimalAssignment) {
  std::vector<int> a;
  EXPECT_DOUBLE_EQ(HungarianAssign({{4, 1, 3}, {2, 0, 5}, {3, 2, 2}}, &a), 5.0);
  EXPECT_EQ(a, (std::vector<int>{1, 0, 2}));
  EXPECT_DOUBLE_EQ(HungarianAssign({{1, 9, 9}, {9, 9, 2}}, &a), 3.0);  // 2 x 3
  EXPECT_EQ(a, (std::vector<int>{0, 2}));
  EXPECT_DOUBLE_EQ(HungarianAssign({{1, 9}, {9, 2}, {0, 0}}, &a), 1.0);  // 3 x 2
  EXPECT_EQ(a, (std::vector<int>{0, -1, 1}));
}

TEST(WiringTest, IdenticalClustersCostTheShift) {
  std::vector<Point2> s;
  for (int i = 0; i < 10; ++i) {
    s.push_back({0.01 * i, 0});
    s.push_back({10 + 0.01 * i, 0});
  }
  WiringOptions o;
  o.shift_mm = 100;
  o.inertia_radius_mm = 0.5;
  // k = 2 on both layers; each centroid travels one shift in every direction.
  EXPECT_NEAR(WiringLengthForPoints(s, s, o, 1), 200.0, 1e-6);
}

}  // namespace
}  // namespace topolab::science
