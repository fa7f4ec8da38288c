// Cortical sheet geometry (spec §2) and the training-neighbourhood pool.
#include "worker/science/tdann/sheet.h"

#include <set>

#include <gtest/gtest.h>

#include "tests/worker/science/tdann/assign_macro.h"

namespace topolab::science {
namespace {

TEST(SheetTest, RfOverlapFollowsFormulaAndCapsAtOne) {
  EXPECT_DOUBLE_EQ(RfOverlap(56), 0.1);
  EXPECT_DOUBLE_EQ(RfOverlap(28), 0.2);
  EXPECT_DOUBLE_EQ(RfOverlap(14), 0.4);
  EXPECT_DOUBLE_EQ(RfOverlap(7), 0.8);
  EXPECT_DOUBLE_EQ(RfOverlap(16), 0.35);   // 64 px input, layer1
  EXPECT_DOUBLE_EQ(RfOverlap(8), 0.7);     // 32 px layer1 / 64 px layer2
  EXPECT_DOUBLE_EQ(RfOverlap(4), 1.0);     // 1.4 capped
  EXPECT_DOUBLE_EQ(RfOverlap(1), 1.0);
}

TEST(SheetTest, HypercolumnWidthsMatchSpecTable) {
  // Spec §2 "nb width (human)" column.
  EXPECT_NEAR(HypercolumnWidth(2.4, 56, 0.1), 0.0475, 1e-4);
  EXPECT_NEAR(HypercolumnWidth(36.75, 28, 0.2), 1.626, 1e-3);
  EXPECT_NEAR(HypercolumnWidth(35.0, 14, 0.4), 3.977, 1e-3);
  EXPECT_NEAR(HypercolumnWidth(22.4, 14, 0.4), 2.545, 1e-3);
  EXPECT_NEAR(HypercolumnWidth(70.0, 7, 0.8), 31.818, 1e-3);
  // Train scale.
  EXPECT_NEAR(HypercolumnWidth(24.5, 28, 0.2), 1.084, 1e-3);
  EXPECT_NEAR(HypercolumnWidth(10.0, 7, 0.8), 4.545, 1e-3);
  // Full overlap: one hypercolumn spans the sheet.
  EXPECT_DOUBLE_EQ(HypercolumnWidth(10.0, 4, 1.0), 10.0);
}

TEST(SheetTest, RegionTableAndScales) {
  ASSERT_OK_AND_ASSIGN(CorticalRegion v1, RegionForLayer("layer2.0"));
  EXPECT_EQ(v1.name, "V1");
  EXPECT_DOUBLE_EQ(v1.SideMm(SheetScale::kHuman), 36.75);
  EXPECT_DOUBLE_EQ(v1.SideMm(SheetScale::kTrain), 24.5);
  ASSERT_OK_AND_ASSIGN(CorticalRegion v4, RegionForLayer("layer3.1"));
  EXPECT_EQ(v4.name, "V4");
  EXPECT_DOUBLE_EQ(v4.SideMm(SheetScale::kTrain), 16.0);
  ASSERT_OK_AND_ASSIGN(CorticalRegion vtc, RegionForLayer("layer4.1"));
  EXPECT_DOUBLE_EQ(vtc.SideMm(SheetScale::kTrain), 10.0);
  ASSERT_OK_AND_ASSIGN(CorticalRegion retina, RegionForLayer("layer1.1"));
  EXPECT_DOUBLE_EQ(retina.SideMm(SheetScale::kTrain), 4.0);
  EXPECT_EQ(RegionForLayer("fc").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseSheetScale("train").value(), SheetScale::kTrain);
  EXPECT_EQ(ParseSheetScale("macaque").status().code(), absl::StatusCode::kInvalidArgument);
}

// Geometry without jitter: every unit lies in its own hypercolumn square
// around anchor (centre[w], centre[h]), anchors span [r, S − r].
void CheckUnjitteredGeometry(int64_t c, int64_t n, double side) {
  SCOPED_TRACE(::testing::Message() << "C=" << c << " N=" << n);
  SheetOptions opt;
  opt.side_mm = side;
  opt.jitter_sd_mm = 0;
  opt.seed = 7;
  ASSERT_OK_AND_ASSIGN(CorticalSheet sheet, BuildCorticalSheet(c, n, n, opt));
  ASSERT_EQ(sheet.positions.sizes(), (std::vector<int64_t>{c * n * n, 2}));
  EXPECT_EQ(sheet.positions.scalar_type(), at::kFloat);
  const double ov = RfOverlap(n);
  EXPECT_DOUBLE_EQ(sheet.rf_overlap, ov);
  const double wdt = side / (n - n * ov + ov);
  EXPECT_NEAR(sheet.hypercolumn_width_mm, wdt, 1e-12);
  const double r = wdt / 2;
  auto p = sheet.positions.accessor<float, 2>();
  double max_dev = 0;
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t h = 0; h < n; ++h) {
      for (int64_t w = 0; w < n; ++w) {
        const int64_t u = ch * n * n + h * n + w;
        const double ax = n == 1 ? r : r + (side - 2 * r) * w / (n - 1);
        const double ay = n == 1 ? r : r + (side - 2 * r) * h / (n - 1);
        EXPECT_LE(std::abs(p[u][0] - ax), r + 1e-5) << "unit " << u;
        EXPECT_LE(std::abs(p[u][1] - ay), r + 1e-5) << "unit " << u;
        max_dev = std::max({max_dev, std::abs(p[u][0] - ax), std::abs(p[u][1] - ay)});
        EXPECT_GE(p[u][0], -1e-5);
        EXPECT_LE(p[u][0], side + 1e-5);
      }
    }
  }
  // Offsets are uniform over the whole square: with many units some come
  // close to the edge.
  if (c * n * n >= 200) {
    EXPECT_GT(max_dev, 0.9 * r);
  }
}

TEST(SheetTest, UnjitteredUnitsStayInTheirHypercolumn) {
  CheckUnjitteredGeometry(4, 56, 2.4);
  CheckUnjitteredGeometry(8, 28, 36.75);
  CheckUnjitteredGeometry(16, 14, 35.0);
  CheckUnjitteredGeometry(32, 7, 70.0);
  CheckUnjitteredGeometry(64, 8, 36.75);   // 32/64 px inputs
  CheckUnjitteredGeometry(64, 4, 35.0);    // ov = 1: one anchor in the middle
  CheckUnjitteredGeometry(512, 1, 70.0);
}

TEST(SheetTest, JitterRestoresPreJitterRangePerAxis) {
  for (int64_t n : {56, 28, 14, 7, 8, 4}) {
    SCOPED_TRACE(n);
    SheetOptions opt;
    opt.side_mm = 20.0;
    opt.seed = 3;
    opt.jitter_sd_mm = 0;
    ASSERT_OK_AND_ASSIGN(CorticalSheet plain, BuildCorticalSheet(8, n, n, opt));
    opt.jitter_sd_mm = 0.3;
    ASSERT_OK_AND_ASSIGN(CorticalSheet fuzzy, BuildCorticalSheet(8, n, n, opt));
    // Same seed: identical offsets, so the pre-jitter layout is `plain`.
    at::Tensor lo0 = std::get<0>(plain.positions.min(0)), hi0 = std::get<0>(plain.positions.max(0));
    at::Tensor lo1 = std::get<0>(fuzzy.positions.min(0)), hi1 = std::get<0>(fuzzy.positions.max(0));
    EXPECT_TRUE(at::allclose(lo0, lo1, 1e-5, 1e-5));
    EXPECT_TRUE(at::allclose(hi0, hi1, 1e-5, 1e-5));
    // ...but the units moved.
    EXPECT_GT((plain.positions - fuzzy.positions).abs().max().item<float>(), 0.05);
  }
}

TEST(SheetTest, UnitIndexIsChannelMajor) {
  SheetOptions opt;
  opt.side_mm = 100.0;   // hypercolumns far apart: the anchor is recoverable
  opt.rf_overlap = 0;
  opt.jitter_sd_mm = 0;
  ASSERT_OK_AND_ASSIGN(CorticalSheet sheet, BuildCorticalSheet(3, 4, 4, opt));
  auto p = sheet.positions.accessor<float, 2>();
  const double wdt = 25.0;  // 100 / 4
  for (int64_t u = 0; u < 48; ++u) {
    const int64_t h = (u % 16) / 4, w = u % 4;
    EXPECT_EQ(static_cast<int64_t>(p[u][0] / wdt), w) << u;
    EXPECT_EQ(static_cast<int64_t>(p[u][1] / wdt), h) << u;
  }
}

TEST(SheetTest, SeededAndDeterministic) {
  SheetOptions opt;
  opt.side_mm = 10;
  opt.seed = 11;
  ASSERT_OK_AND_ASSIGN(CorticalSheet a, BuildCorticalSheet(16, 8, 8, opt));
  ASSERT_OK_AND_ASSIGN(CorticalSheet b, BuildCorticalSheet(16, 8, 8, opt));
  EXPECT_TRUE(at::equal(a.positions, b.positions));
  opt.seed = 12;
  ASSERT_OK_AND_ASSIGN(CorticalSheet c, BuildCorticalSheet(16, 8, 8, opt));
  EXPECT_FALSE(at::equal(a.positions, c.positions));
}

TEST(SheetTest, RejectsBadInput) {
  SheetOptions opt;
  opt.side_mm = 10;
  EXPECT_EQ(BuildCorticalSheet(4, 8, 6, opt).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildCorticalSheet(0, 8, 8, opt).status().code(), absl::StatusCode::kInvalidArgument);
  opt.side_mm = 0;
  EXPECT_EQ(BuildCorticalSheet(4, 8, 8, opt).status().code(), absl::StatusCode::kInvalidArgument);
  opt.side_mm = 10;
  opt.rf_overlap = 1.5;
  EXPECT_EQ(BuildCorticalSheet(4, 8, 8, opt).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SheetTest, LayerSheetUsesTableOrOverride) {
  LayerSheetSpec spec;
  spec.layer = "layer2.0";
  spec.channels = 2;
  spec.size = 28;
  ASSERT_OK_AND_ASSIGN(CorticalSheet human, BuildLayerSheet(spec, 0.3, 0));
  EXPECT_NEAR(human.hypercolumn_width_mm, 1.626, 1e-3);
  spec.scale = SheetScale::kTrain;
  ASSERT_OK_AND_ASSIGN(CorticalSheet train, BuildLayerSheet(spec, 0.3, 0));
  EXPECT_NEAR(train.hypercolumn_width_mm, 1.084, 1e-3);
  spec.layer = "conv9";
  EXPECT_EQ(BuildLayerSheet(spec, 0.3, 0).status().code(), absl::StatusCode::kNotFound);
  spec.side_mm = 5;
  ASSERT_OK_AND_ASSIGN(CorticalSheet custom, BuildLayerSheet(spec, 0.3, 0));
  EXPECT_DOUBLE_EQ(custom.side_mm, 5);
}

// A lattice of integer points 0..side-1 on both axes.
at::Tensor Lattice(int64_t side) {
  at::Tensor g = at::arange(side, at::kFloat);
  return at::stack({g.repeat({side}), g.repeat_interleave(side)}, 1);
}

void CheckPoolRows(const at::Tensor& pool, const at::Tensor& pos, double width) {
  auto pa = pool.accessor<int64_t, 2>();
  auto xy = pos.accessor<float, 2>();
  for (int64_t i = 0; i < pool.size(0); ++i) {
    std::set<int64_t> members;
    float x0 = 1e30f, x1 = -1e30f, y0 = 1e30f, y1 = -1e30f;
    for (int64_t k = 0; k < pool.size(1); ++k) {
      const int64_t u = pa[i][k];
      ASSERT_GE(u, 0);
      ASSERT_LT(u, pos.size(0));
      members.insert(u);
      x0 = std::min(x0, xy[u][0]);
      x1 = std::max(x1, xy[u][0]);
      y0 = std::min(y0, xy[u][1]);
      y1 = std::max(y1, xy[u][1]);
    }
    EXPECT_EQ(static_cast<int64_t>(members.size()), pool.size(1)) << "duplicate member, row " << i;
    EXPECT_LE(x1 - x0, width + 1e-6);
    EXPECT_LE(y1 - y0, width + 1e-6);
  }
}

TEST(NeighborhoodPoolTest, KIsFifthPercentileWithFloorOf25) {
  // Width 5.5 on a unit lattice: each axis covers 5 or 6 points, so windows
  // hold 25, 30 or 36 units; the 5th percentile is 25.
  at::Tensor pos = Lattice(40);
  NeighborhoodPoolOptions opt;
  opt.num_windows = 2000;
  opt.seed = 1;
  at::Tensor pool = BuildNeighborhoodPool(pos, 5.5, opt);
  ASSERT_EQ(pool.size(1), 25);
  EXPECT_EQ(pool.size(0), 2000);  // every window has >= 25 units
  CheckPoolRows(pool, pos, 5.5);
  // Width 7.5: 7 or 8 per axis -> 49, 56 or 64 members; K = 49 > floor.
  at::Tensor pool2 = BuildNeighborhoodPool(pos, 7.5, opt);
  EXPECT_EQ(pool2.size(1), 49);
  CheckPoolRows(pool2, pos, 7.5);
}

TEST(NeighborhoodPoolTest, SmallWindowsBelowFloorAreDropped) {
  // Width 3.5: 9 or 16 members, all below the floor of 25: nothing survives.
  NeighborhoodPoolOptions opt;
  opt.num_windows = 500;
  at::Tensor pool = BuildNeighborhoodPool(Lattice(40), 3.5, opt);
  EXPECT_EQ(pool.size(0), 0);
  EXPECT_EQ(pool.size(1), 25);
  // A lower floor keeps them at K = 9.
  opt.min_size = 5;
  at::Tensor pool2 = BuildNeighborhoodPool(Lattice(40), 3.5, opt);
  EXPECT_EQ(pool2.size(1), 9);
  EXPECT_EQ(pool2.size(0), 500);
}

TEST(NeighborhoodPoolTest, CappedAt500AndAtUnitCount) {
  // 200x200 lattice, width 40.5: ~1600 members per window -> K = 500.
  NeighborhoodPoolOptions opt;
  opt.num_windows = 50;
  at::Tensor big = Lattice(200);
  at::Tensor pool = BuildNeighborhoodPool(big, 40.5, opt);
  EXPECT_EQ(pool.size(1), 500);
  EXPECT_EQ(pool.size(0), 50);
  CheckPoolRows(pool, big, 40.5);
  // Ten coincident units: K = 10 (the floor of 25 cannot be met).
  at::Tensor ten = at::zeros({10, 2});
  at::Tensor pool10 = BuildNeighborhoodPool(ten, 1.0, opt);
  EXPECT_EQ(pool10.size(1), 10);
  EXPECT_EQ(pool10.size(0), 50);
}

TEST(NeighborhoodPoolTest, SeededAndDeterministic) {
  NeighborhoodPoolOptions opt;
  opt.num_windows = 300;
  opt.seed = 5;
  at::Tensor a = BuildNeighborhoodPool(Lattice(30), 6.0, opt);
  at::Tensor b = BuildNeighborhoodPool(Lattice(30), 6.0, opt);
  EXPECT_TRUE(at::equal(a, b));
  opt.seed = 6;
  EXPECT_FALSE(at::equal(a, BuildNeighborhoodPool(Lattice(30), 6.0, opt)));
}

}  // namespace
}  // namespace topolab::science
