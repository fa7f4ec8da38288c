// Grating generator (row order, value range, colour conventions, orientation
// of the gradient, frequency by FFT peak) and category-set bookkeeping.
#include "worker/science/stimuli/stimuli.h"

#include <cmath>

#include <gtest/gtest.h>

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(GratingRowsTest, RowIndexFollowsTheFactorialOrder) {
  EXPECT_EQ(GratingRowIndex({0, 0, 0, 0}), 0);
  EXPECT_EQ(GratingRowIndex({0, 0, 0, 1}), 1);
  EXPECT_EQ(GratingRowIndex({0, 0, 1, 0}), 2);
  EXPECT_EQ(GratingRowIndex({0, 1, 0, 0}), 10);
  EXPECT_EQ(GratingRowIndex({1, 0, 0, 0}), 80);
  EXPECT_EQ(GratingRowIndex({7, 7, 4, 1}), 639);
  for (int64_t r = 0; r < kNumGratings; ++r) {
    EXPECT_EQ(GratingRowIndex(GratingConditionOfRow(r)), r);
  }
  GratingCondition c = GratingConditionOfRow(((3 * 8 + 5) * 5 + 2) * 2 + 1);
  EXPECT_EQ(c.orientation, 3);
  EXPECT_EQ(c.frequency, 5);
  EXPECT_EQ(c.phase, 2);
  EXPECT_EQ(c.colour, 1);
}

TEST(GratingRowsTest, FrequenciesMatchTheOfficialLinspace) {
  std::vector<double> f = GratingFrequencies({});
  ASSERT_EQ(f.size(), 8u);
  EXPECT_DOUBLE_EQ(f[0], 5.5);
  EXPECT_NEAR(f[1], 18.5625, 1e-12);
  EXPECT_NEAR(f[7], 96.9375, 1e-12);
  GratingOptions log;
  log.sf_spacing = "log";
  std::vector<double> g = GratingFrequencies(log);
  EXPECT_NEAR(g[0], 0.5 * 8, 1e-9);
  EXPECT_NEAR(g[7], 12.0 * 8, 1e-9);
}

TEST(GratingRowsTest, FactorLabelsDecodeRows) {
  at::Tensor o = GratingFactorLabels("orientation");
  at::Tensor op = GratingFactorLabels("orientation_phase");
  EXPECT_EQ(o[80].item<int64_t>(), 1);
  EXPECT_EQ(op[82].item<int64_t>(), 1 * 5 + 1);
  EXPECT_THROW(GratingFactorLabels("nope"), std::invalid_argument);
}

TEST(GratingSetTest, ImagesAreInUnitRangeWithColourConventions) {
  GratingOptions opt;
  opt.image_size = 32;
  GratingSet set(opt);
  at::Tensor imgs = set.Images(0, 4);  // rows 0..3: colours bw, rc, bw, rc
  ASSERT_EQ(imgs.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_GE(imgs.min().item<float>(), 0.0f);
  EXPECT_LE(imgs.max().item<float>(), 1.0f);
  // Black/white: identical channels. Red/cyan: G = B = 1 - R.
  EXPECT_TRUE(at::allclose(imgs[0][0], imgs[0][1]));
  EXPECT_TRUE(at::allclose(imgs[0][0], imgs[0][2]));
  EXPECT_TRUE(at::allclose(imgs[1][1], 1 - imgs[1][0]));
  EXPECT_TRUE(at::allclose(imgs[1][2], 1 - imgs[1][0]));
  // Row 0: theta 0, phase 0 -> pixel (0, 0) = 0.5 + 0.5 sin(0) = 0.5.
  EXPECT_NEAR(imgs[0][0][0][0].item<float>(), 0.5f, 1e-6);
  // Slices equal the whole set.
  EXPECT_TRUE(at::allclose(set.Images(2, 1)[0], imgs[2]));
  EXPECT_THROW(set.Images(639, 2), std::out_of_range);
}

TEST(GratingSetTest, GradientPointsAlongTheOrientation) {
  GratingOptions opt;
  opt.image_size = 96;
  for (int o = 0; o < kNumOrientations; ++o) {
    at::Tensor g = RenderGrating({o, 0, 1, 0}, opt)[0].to(at::kDouble);
    // Central differences; for theta the intensity depends only on
    // x cos(theta) + y sin(theta), so (gx, gy) is parallel to (cos, sin).
    at::Tensor gx = (g.narrow(1, 2, 94) - g.narrow(1, 0, 94)).narrow(0, 1, 94);
    at::Tensor gy = (g.narrow(0, 2, 94) - g.narrow(0, 0, 94)).narrow(1, 1, 94);
    double th = GratingOrientationDeg(o) * kPi / 180;
    double along = (gx * std::cos(th) + gy * std::sin(th)).abs().sum().item<double>();
    double across = (gx * -std::sin(th) + gy * std::cos(th)).abs().sum().item<double>();
    EXPECT_GT(along, 20 * across) << "orientation " << o;
  }
}

TEST(GratingSetTest, FftPeakIsAtTheSpatialFrequency) {
  GratingOptions opt;
  opt.image_size = 128;
  std::vector<double> f = GratingFrequencies(opt);
  for (int fi : {1, 2, 3}) {
    for (int o : {0, 4}) {  // 0 deg: varies along x; 90 deg: along y
      at::Tensor g = RenderGrating({o, fi, 0, 0}, opt)[0].to(at::kDouble);
      g = g - g.mean();
      at::Tensor line = o == 0 ? g[64] : g.select(1, 64);
      at::Tensor spec = at::abs(at::fft_rfft(line));
      int64_t peak = spec.argmax().item<int64_t>();
      EXPECT_EQ(peak, std::lround(f[fi])) << "sf " << fi << " orientation " << o;
      // The orthogonal axis is constant.
      at::Tensor other = o == 0 ? g.select(1, 10) : g[10];
      EXPECT_LT((other - other[0]).abs().max().item<double>(), 1e-9);
    }
  }
}

TEST(GratingSetTest, DescribeListsEveryRow) {
  GratingSet set({});
  nlohmann::json d = set.Describe();
  ASSERT_EQ(d["rows"].size(), 640u);
  EXPECT_EQ(d["rows"][81]["orientation_deg"], 22.5);
  EXPECT_EQ(d["rows"][81]["colour"], "red_cyan");
  EXPECT_EQ(d["rows"][10]["frequency"], 1);
}

TEST(CategorySetTest, SelectsRowsPerCategoryAndLoadsThem) {
  std::vector<int64_t> labels = {2, 0, 1, 0, 2, 1, 0};
  std::vector<int64_t> rc, rs;
  SelectRowsPerCategory(labels, 3, 2, &rc, &rs);
  EXPECT_EQ(rc, (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(rs, (std::vector<int64_t>{1, 3, 2, 5, 0, 4}));
  std::vector<std::vector<int64_t>> asked;
  ImageLoader loader = [&](const std::vector<int64_t>& idx) {
    asked.push_back(idx);
    at::Tensor out = at::zeros({static_cast<int64_t>(idx.size()), 3, 8, 8});
    for (size_t i = 0; i < idx.size(); ++i) out[i].fill_(static_cast<double>(idx[i]) / 10);
    return out;
  };
  DomainMap domains = {{"ab", {"a", "b"}}};
  ASSERT_EQ(ValidateDomains(domains, {"a", "b", "c"}), "");
  CategorySet set({"a", "b", "c"}, rc, rs, domains, 8, loader, "test");
  at::Tensor imgs = set.Images(2, 3);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], (std::vector<int64_t>{2, 5, 0}));
  EXPECT_NEAR(imgs[1][0][0][0].item<float>(), 0.5f, 1e-6);
  EXPECT_TRUE(at::equal(set.Labels(), at::tensor(rc, at::kLong)));
  nlohmann::json d = set.Describe();
  EXPECT_EQ(d["rows"][4]["category"], "c");
  EXPECT_EQ(d["rows"][0]["domains"], nlohmann::json::array({"ab"}));
  EXPECT_TRUE(d["rows"][4]["domains"].empty());
}

TEST(CategorySetTest, DomainValidationNamesTheProblem) {
  EXPECT_NE(ValidateDomains({{"x", {"nope"}}}, {"a", "b"}).find("domains.x"), std::string::npos);
  EXPECT_NE(ValidateDomains({{"x", {}}}, {"a", "b"}), "");
  EXPECT_NE(ValidateDomains({{"x", {"a", "b"}}}, {"a", "b"}), "");  // nothing left off
  EXPECT_EQ(ValidateDomains(FlocDomains(), {"number", "word", "limb", "body", "adult", "child",
                                            "car", "instrument", "house", "corridor"}),
            "");
  std::vector<std::string> fm = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  DomainMap d = FashionMnistDomains(fm);
  EXPECT_EQ(d.size(), 5u);
  EXPECT_EQ(d["tops"], (std::vector<std::string>{"T-shirt/top", "Shirt"}));
  EXPECT_EQ(ValidateDomains(d, fm), "");
}

}  // namespace
}  // namespace topolab::science
