// All-TNN tests: models.md §1.5 (a)-(g) plus the LC layer, the sheet window
// statistics and the controls.
#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "worker/science/families/alltnn.h"
#include "worker/science/families/alltnn_analysis.h"
#include "worker/science/io/png.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

AllTnnOptions Mini() {
  auto o = ParseAllTnnOptions({{"preset", "mini"}}, 10);
  EXPECT_TRUE(o.ok());
  return *o;
}

TEST(LocallyConnectedTest, EqualsConvWhenAllPositionsShareOneKernel) {
  at::manual_seed(0);
  LocallyConnected2dOptions o;
  o.in_channels = 3;
  o.out_channels = 4;
  o.in_height = o.in_width = 9;
  o.kernel = 3;
  o.stride = 2;
  o.padding = 1;
  LocallyConnected2d lc(o);
  ASSERT_EQ(lc->out_height(), 5);
  at::Tensor k = at::randn({4, 3, 3, 3});
  at::Tensor b = at::randn({4});
  {
    at::NoGradGuard ng;
    // Row layout (Cin, kh, kw) = k.view(4, 27) transposed, same for all P.
    lc->weight.copy_(k.view({4, 27}).t().unsqueeze(0).expand({25, 27, 4}));
    lc->bias.copy_(b.view({1, 1, 4}).expand({5, 5, 4}));
  }
  at::Tensor x = at::randn({2, 3, 9, 9});
  EXPECT_TRUE(at::allclose(lc->forward(x), at::conv2d(x, k, b, 2, 1), 1e-5, 1e-5));
}

TEST(LocallyConnectedTest, KernelsAreUntied) {
  LocallyConnected2dOptions o;
  o.in_channels = 1;
  o.out_channels = 1;
  o.in_height = o.in_width = 3;
  o.kernel = 2;
  o.bias = false;
  LocallyConnected2d lc(o);
  {
    at::NoGradGuard ng;
    lc->weight.zero_();
    lc->weight[3][0][0] = 1.0;  // only position (1,1), top-left tap
  }
  at::Tensor x = at::arange(9, at::kFloat).view({1, 1, 3, 3});
  at::Tensor y = lc->forward(x);
  EXPECT_TRUE(at::equal(y, at::tensor({0.f, 0.f, 0.f, 4.f}).view({1, 1, 2, 2})));
}

// (c) sheet <-> channel mapping is a bijection with the documented layout.
TEST(SheetTest, RoundTripAndLayout) {
  EXPECT_EQ(SheetTile(64), (std::pair<int64_t, int64_t>(8, 8)));
  EXPECT_EQ(SheetTile(2500), (std::pair<int64_t, int64_t>(50, 50)));
  EXPECT_EQ(SheetTile(12), (std::pair<int64_t, int64_t>(3, 4)));
  EXPECT_EQ(SheetTile(7), (std::pair<int64_t, int64_t>(1, 7)));
  at::Tensor x = at::randn({2, 12, 3, 5});
  at::Tensor s = ChannelsToSheet(x);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2, 9, 20}));
  EXPECT_TRUE(at::equal(SheetToChannels(s, 12), x));
  // unit (ch 5, h 1, w 2) -> row 1*3 + 5/4 = 4, col 2*4 + 5%4 = 9
  EXPECT_EQ(s[1][4][9].item<float>(), x[1][5][1][2].item<float>());
  // every sheet cell holds a distinct unit
  at::Tensor ids = ChannelsToSheet(at::arange(12 * 15).view({12, 3, 5}));
  EXPECT_EQ(std::get<0>(at::_unique(ids.flatten())).numel(), 180);
}

// (a) smoothness 0 for identical kernels, ~0.5 for independent random ones.
TEST(SmoothnessTest, ZeroForIdenticalAboutHalfForRandom) {
  at::manual_seed(1);
  at::Tensor same = at::randn({1, 1, 30}).expand({16, 16, 30});
  EXPECT_NEAR(SheetSmoothnessLoss(same).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(SheetSmoothnessLoss(same, true, 8).item<double>(), 0.0, 1e-6);
  at::Tensor rnd = at::randn({32, 32, 200});
  EXPECT_NEAR(SheetSmoothnessLoss(rnd).item<double>(), 0.5, 0.01);
  EXPECT_NEAR(SheetSmoothnessLoss(rnd, false, 8).item<double>(), 0.5, 0.01);
}

// (b) wrap-around neighbours.
TEST(SmoothnessTest, WrapAroundNeighboursByHand) {
  // 2x2 sheet: (0,0)=(1,0) (0,1)=(1,0) (1,0)=(0,1) (1,1)=(0,1).
  // down pairs (with wrap): 0,0,0,0 -> 0; right pairs: 1,1,1,1 -> 1.
  at::Tensor v = at::tensor({1.f, 0.f, 1.f, 0.f, 0.f, 1.f, 0.f, 1.f}).view({2, 2, 2});
  EXPECT_NEAR(SheetSmoothnessLoss(v).item<double>(), (1 - 0.5) / 2, 1e-6);
  // 3x3 sheet, rows (1,0),(1,0),(0,1): right sims 1. Down with wrap:
  // r0-r1 1, r1-r2 0, r2-r0 0 -> 1/3 -> loss (1 - 2/3)/2 = 1/6. Without
  // wrap: 1, 0 -> 1/2 -> loss (1 - 3/4)/2 = 1/8.
  at::Tensor rows = at::tensor({1.f, 0.f, 1.f, 0.f, 0.f, 1.f}).view({3, 1, 2}).expand({3, 3, 2});
  EXPECT_NEAR(SheetSmoothnessLoss(rows, true).item<double>(), 1.0 / 6, 1e-6);
  EXPECT_NEAR(SheetSmoothnessLoss(rows, false).item<double>(), 1.0 / 8, 1e-6);
  // 8-neighbourhood with wrap: down 1/3, right 1, both diagonals 1/3 ->
  // mean 1/2 -> loss 1/4.
  EXPECT_NEAR(SheetSmoothnessLoss(rows, true, 8).item<double>(), 0.25, 1e-6);
}

TEST(AllTnnTest, MiniShapesAndControls) {
  at::manual_seed(2);
  AllTnn lc(Mini());
  const auto& g = lc->geometry();
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].out_h, 14);
  EXPECT_EQ(g[0].sheet_h, 56);
  EXPECT_EQ(g[1].out_h, 5);
  EXPECT_EQ(g[2].out_h, 3);
  EXPECT_EQ(g[2].sheet_h, 15);
  ModelOutput out = lc->Forward(at::rand({2, 3, 32, 32}));
  EXPECT_EQ(out.layers[0].sizes(), (std::vector<int64_t>{2, 16, 14, 14}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(lc->feature_dim(), 25 * 9);
  // CNN control: shared kernels, no smoothness term; LCN: alpha 0.
  auto conv_o = ParseAllTnnOptions({{"preset", "mini"}, {"layer_type", "conv"}}, 10);
  ASSERT_OK(conv_o);
  AllTnn cnn(*conv_o);
  EXPECT_EQ(cnn->Forward(at::rand({1, 3, 32, 32})).logits.sizes(), (std::vector<int64_t>{1, 10}));
  EXPECT_FALSE(cnn->LayerSmoothness()[0].defined());
  auto lcn_o = ParseAllTnnOptions({{"preset", "mini"}, {"alpha", 0}, {"l2", 0}}, 10);
  ASSERT_OK(lcn_o);
  AllTnn lcn(*lcn_o);
  EXPECT_EQ(lcn->AuxiliaryLoss().item<double>(), 0.0);
  EXPECT_GT(lc->AuxiliaryLoss().item<double>(), 0.0);
  EXPECT_FALSE(ParseAllTnnOptions({{"preset", "mini"}, {"image_size", 10}}, 10).ok());
  EXPECT_FALSE(ParseAllTnnOptions({{"layer_factors", {1, 2}}}, 10).ok());
  EXPECT_FALSE(ParseAllTnnOptions({{"layers", {{{"kernel", 3}, {"chanels", 4}}}}}, 10).ok());
}

TEST(AllTnnTest, FullPresetGeometryMatchesPaperTable) {
  auto o = ParseAllTnnOptions({}, 565);
  ASSERT_OK(o);
  int64_t side = 150;
  const int64_t expect_out[] = {48, 22, 20, 8, 6, 1};
  const int64_t expect_sheet[] = {384, 198, 180, 128, 96, 50};
  for (size_t l = 0; l < 6; ++l) {
    const auto& s = o->layers[l];
    side = LcOutputSide(side, s.kernel, s.stride, 0);
    EXPECT_EQ(side, expect_out[l]);
    EXPECT_EQ(side * SheetTile(s.channels).first, expect_sheet[l]);
    if (s.pool) side /= 2;
  }
}

// (d) one optimisation step lowers the loss when alpha = 10.
TEST(AllTnnTest, OneStepLowersLossWithAlpha10) {
  at::manual_seed(3);
  AllTnn m(Mini());
  at::Tensor x = at::rand({8, 3, 32, 32});
  at::Tensor y = at::randint(0, 10, {8}, at::kLong);
  auto loss_fn = [&]() {
    ModelOutput o = m->Forward(x);
    return at::nll_loss(at::log_softmax(o.logits, 1), y) + m->AuxiliaryLoss();
  };
  at::Tensor before = loss_fn();
  before.backward();
  {
    at::NoGradGuard ng;
    for (auto& p : m->parameters()) {
      if (p.grad().defined()) p.sub_(0.05 * p.grad());
    }
  }
  at::Tensor after = loss_fn();
  EXPECT_LT(after.item<double>(), before.item<double>());
  // The smoothness term itself moves down along its gradient.
  EXPECT_GT(m->LayerSmoothness()[0].item<double>(), 0.3);
}

// (e) gratings + vector sum recover the orientation of a hand-built filter.
TEST(OrientationTest, RecoversOrientationOfHandBuiltFilter) {
  const int64_t s = 24, k = 9;
  const double lambda = 4.0;
  for (int target : {0, 2, 5}) {
    LocallyConnected2dOptions o;
    o.in_channels = 3;
    o.out_channels = 4;
    o.in_height = o.in_width = s;
    o.kernel = k;
    o.stride = 4;
    o.bias = false;
    LocallyConnected2d lc(o);
    // Kernel = the grating of orientation `target` at phase 0 (zero mean).
    const double theta = kPi * target / 8;
    at::Tensor kern = at::empty({k, k}, at::kFloat);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j)
        kern[i][j] = std::sin(2 * kPi * (std::sin(theta) * j - std::cos(theta) * i) / lambda);
    kern = kern - kern.mean();
    {
      at::NoGradGuard ng;
      at::Tensor row = kern.unsqueeze(0).expand({3, k, k}).reshape({3 * k * k, 1});
      lc->weight.copy_(row.unsqueeze(0).expand({lc->out_height() * lc->out_width(), 3 * k * k, 4}));
    }
    AllTnnGratingSet set({s, {lambda}, 8});
    ASSERT_EQ(set.size(), 8 * 4);
    at::Tensor img = set.Images(0, set.size()) * 2.0 - 1.0;
    at::Tensor resp = ChannelsToSheet(at::relu(lc->forward(img)));  // [32, Hs, Ws]
    OrientationMaps m = AnalyzeOrientation(resp, set.OrientationLabels());
    EXPECT_EQ(m.fraction_silent, 0.0);
    at::Tensor diff = (m.preference - target / 8.0).abs();
    EXPECT_LT(at::minimum(diff, 1.0 - diff).max().item<double>(), 0.02) << target;
    EXPECT_TRUE((m.bins == target).all().item<bool>());
    EXPECT_GT(at::nanmean(m.spread).item<double>(), 0.2);
  }
}

TEST(OrientationTest, VectorSumAndSpreadClosedForms) {
  at::Tensor onehot = at::zeros({8, 1});
  onehot[3][0] = 2.0;
  EXPECT_NEAR(VectorSumPreference(onehot).item<double>(), 3.0 / 8, 1e-12);
  EXPECT_NEAR(TuningSpread(onehot).item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(TuningSpread(at::ones({8, 1})).item<double>(), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(TuningSpread(at::zeros({8, 1})).item<double>()));
  // Peak between orientations 7 and 0 wraps around: preference 15/16.
  at::Tensor two = at::zeros({8, 1});
  two[7][0] = 1;
  two[0][0] = 1;
  EXPECT_NEAR(VectorSumPreference(two).item<double>(), 15.0 / 16, 1e-12);
}

TEST(WindowStatsTest, EntropyAndClusterRadiusByHand) {
  at::Tensor nine = at::arange(9, at::kLong).view({3, 3});
  at::Tensor e = WindowEntropy(nine, 9, 1);
  EXPECT_TRUE(at::allclose(e, at::full({3, 3}, std::log(9.0), at::kDouble)));
  at::Tensor flat = at::zeros({6, 6}, at::kLong);
  EXPECT_TRUE(at::allclose(WindowEntropy(flat, 8, 4), at::zeros({6, 6}, at::kDouble)));
  // Checkerboard of 2 bins: every 3x3 window holds both -> radius 1.
  at::Tensor cb = (at::arange(6).view({6, 1}) + at::arange(6).view({1, 6})) % 2;
  EXPECT_TRUE(at::allclose(ClusterRadius(cb, 2), at::ones({6, 6}, at::kDouble)));
  // A single bin never completes 2 bins -> NaN.
  EXPECT_TRUE(at::isnan(ClusterRadius(flat, 2)).all().item<bool>());
  // Silent (-1) cells are ignored: entropy of an all-silent sheet is NaN.
  EXPECT_TRUE(at::isnan(WindowEntropy(at::full({4, 4}, -1, at::kLong), 8, 1)).all().item<bool>());
  // Box sum with wrap on a 1x3 row of [1, 2, 3], r = 1: 6 everywhere.
  EXPECT_TRUE(at::allclose(BoxSumWrap(at::tensor({1.0, 2.0, 3.0}).view({1, 1, 3}), 1)
                               .narrow(1, 0, 1),
                           at::full({1, 1, 3}, 18.0, at::kDouble)));
}

// (f) d' against a closed-form toy.
TEST(CategoryTest, DPrimeClosedFormAndWinnerTakeAll) {
  // unit 0: cat0 {1, 3} (mu 2, sd 1); rest {0, 0, 2, 2} (mu 1, sd 1) -> d' = 1.
  // unit 1: constant 5 everywhere -> d' = 0.
  at::Tensor r = at::tensor({1.0, 5.0, 3.0, 5.0, 0.0, 5.0, 0.0, 5.0, 2.0, 5.0, 2.0, 5.0}).view({6, 2});
  at::Tensor labels = at::tensor({0, 0, 1, 1, 2, 2}, at::kLong);
  at::Tensor d = CategoryDPrime(r, labels, 3);
  EXPECT_NEAR(d[0][0].item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(d[0][1].item<double>(), 0.0, 1e-9);
  // cat1 {0,0}: mu 0 sd 0 vs {1,3,2,2}: mu 2, sd sqrt(0.5) -> -2/(sqrt(.5)/2)
  EXPECT_NEAR(d[1][0].item<double>(), -2.0 / (std::sqrt(0.5) / 2), 1e-8);
  WinnerTakeAll w = CategoryWinnerTakeAll(at::tensor({1.0, 0.5, -1.0, 0.5, 0.2, 0.5}).view({3, 2}));
  EXPECT_EQ(w.winner[0].item<int64_t>(), 0);
  EXPECT_EQ(w.winner[1].item<int64_t>(), -1);  // tie -> nobody
  EXPECT_EQ(w.masked[0][0].item<double>(), 1.0);
  EXPECT_TRUE(std::isnan(w.masked[1][0].item<double>()));
}

// (g) transmission energy >= 0 and equal to a hand computation.
TEST(EnergyTest, OneLayerToyByHand) {
  auto o = ParseAllTnnOptions(
      {{"layers", {{{"kernel", 2}, {"stride", 1}, {"channels", 1}, {"pool", false}}}},
       {"image_size", 3}, {"norm", "none"}},
      2);
  ASSERT_OK(o);
  AllTnn m(*o);
  auto lc = m->named_modules()["lc0"]->as<LocallyConnected2dImpl>();
  at::Tensor w = at::tensor({0.5f, -1.0f, 0.25f, 2.0f}).view({1, 4, 1});  // taps (0,0)(0,1)(1,0)(1,1), one channel
  {
    at::NoGradGuard ng;
    lc->weight.zero_();
    // [P=4, D=12 (c,kh,kw), 1]: same 2x2 taps on each of the 3 input channels.
    for (int c = 0; c < 3; ++c) lc->weight.narrow(1, c * 4, 4).copy_(w.expand({4, 4, 1}));
    lc->bias.fill_(0.1f);
  }
  at::Tensor img = at::rand({2, 3, 3, 3});
  std::vector<at::Tensor> e = m->TransmissionEnergy(img);
  ASSERT_EQ(e.size(), 1u);
  ASSERT_EQ(e[0].sizes(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_GE(e[0].min().item<double>(), 0.0);
  at::Tensor x = (img * 2.0 - 1.0).to(at::kDouble);
  const double taps[2][2] = {{0.5, -1.0}, {0.25, 2.0}};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      double expected = 0;
      for (int b = 0; b < 2; ++b) {
        double y = 0.1, pre = 0;
        for (int c = 0; c < 3; ++c)
          for (int di = 0; di < 2; ++di)
            for (int dj = 0; dj < 2; ++dj) {
              const double v = x[b][c][i + di][j + dj].item<double>();
              y += taps[di][dj] * v;
              pre += std::abs(taps[di][dj]) * std::abs(v);
            }
        expected += std::max(y, 0.0) / 3.0 + 2.0 * pre / 3.0;
      }
      EXPECT_NEAR(e[0][0][i][j].item<double>(), expected, 1e-4) << i << "," << j;
    }
  }
}

TEST(EnergyTest, MapHelpers) {
  at::Tensor c = at::full({8, 8}, 2.0, at::kDouble);
  EXPECT_TRUE(at::allclose(BoxSmoothWrap(c, 8), c));
  at::Tensor spike = at::zeros({8, 8}, at::kDouble);
  spike[0][0] = 64.0;
  EXPECT_NEAR(BoxSmoothWrap(spike, 8).sum().item<double>(), 64.0, 1e-9);  // mass preserved
  at::Tensor stacked = StackMaps({at::ones({4, 4}), at::full({8, 8}, 2.0)});
  EXPECT_TRUE(at::allclose(stacked, at::full({8, 8}, 3.0, at::kDouble)));
  EXPECT_TRUE(at::allclose(DiscProfile(c), at::full({4}, 2.0, at::kDouble)));
  at::Tensor centre = at::zeros({9, 9}, at::kDouble);
  centre[4][4] = 1.0;
  at::Tensor prof = DiscProfile(centre);
  EXPECT_GT(prof[0].item<double>(), prof[3].item<double>());  // energy concentrated centrally
  // FFT profile of a constant preference map is all DC.
  at::Tensor fp = PreferenceFftProfile(at::full({8, 8}, 0.25, at::kDouble), at::zeros({8, 8}, at::kBool));
  EXPECT_NEAR(fp[0].item<double>(), 64.0 * 64.0, 1e-6);
  EXPECT_NEAR(fp.narrow(0, 1, fp.size(0) - 1).abs().max().item<double>(), 0.0, 1e-6);
}

TEST(MapsPngTest, WritesReadablePictures) {
  const std::string dir = ::testing::TempDir();
  at::Tensor pref = at::rand({10, 12}, at::kDouble);
  pref[0][0] = NAN;
  WriteSheetOrientationPng(dir + "/o.png", pref);
  at::Tensor rgb = ReadPngRgb(dir + "/o.png");
  EXPECT_EQ(rgb.size(0) % 10, 0);
  EXPECT_GE(rgb.size(0), 256);
  EXPECT_EQ(rgb[0][0][0].item<uint8_t>(), 211);  // NaN cell is grey
  WriteSheetScalarPng(dir + "/s.png", at::randn({5, 5}), "diverging");
  WriteSheetCategoryPng(dir + "/c.png", at::randint(-1, 3, {6, 6}, at::kLong), 3);
  EXPECT_TRUE(std::filesystem::exists(dir + "/c.png"));
}

}  // namespace
}  // namespace topolab::science
