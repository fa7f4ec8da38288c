// V1 ResNet module tests (models.md §3.5) and variant construction.
#include <cmath>
#include <filesystem>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "worker/science/families/corruptions.h"
#include "worker/science/families/v1resnet.h"
#include "worker/science/io/png.h"

namespace topolab::science {
namespace {

TEST(DoGTest, PassesNonDoGChannelsThroughAndKernelShape) {
  at::manual_seed(0);
  DoGLayer layer(16, 2, "clean");
  at::Tensor x = at::randn({2, 64, 16, 16});
  at::Tensor y = layer->forward(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(at::equal(y.narrow(1, 16, 48), x.narrow(1, 16, 48)));
  EXPECT_FALSE(at::allclose(y.narrow(1, 0, 16), x.narrow(1, 0, 16)));
  // Clean kernels: each (out, in) kernel has L2 norm |g| and is radially
  // symmetric with a centre of the sign of g (centre-surround).
  at::Tensor k = layer->dog->Kernels();
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{16, 16, 5, 5}));
  at::Tensor g = layer->dog->total_scale.view({16, 16});
  EXPECT_TRUE(at::allclose(k.flatten(2).norm(2, {2}), g.abs(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(k, k.flip({2}), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(k, k.transpose(2, 3), 1e-5, 1e-6));
  // Reference mode: unit L2 norm across the Cout*Cin axis at every pixel.
  DoGConv2d ref(4, 2, 2, "reference");
  at::Tensor kr = ref->Kernels().view({16, 25});
  EXPECT_TRUE(at::allclose(kr.norm(2, {0}), at::ones({25}), 1e-5, 1e-5));
}

TEST(DoGTest, ReferenceFormulaByHand) {
  DoGConv2d d(1, 1, 1, "reference");
  {
    at::NoGradGuard ng;
    d->sigma1.fill_(1.0);
    d->sigma2_scale.fill_(2.0);
    d->total_scale.fill_(3.0);
  }
  // One (out, in) pair: normalising across that single-element axis gives
  // sign(kernel) at each pixel. Centre: E = 1/pi, I = 2/pi -> -1/pi * 3 < 0.
  at::Tensor k = d->Kernels();
  EXPECT_NEAR(k[0][0][1][1].item<double>(), -1.0, 1e-6);
  DoGConv2d c(1, 1, 1, "clean");
  {
    at::NoGradGuard ng;
    c->sigma1.fill_(1.0);
    c->sigma2_scale.fill_(2.0);
    c->total_scale.fill_(1.0);
  }
  // Clean centre: E - I = 1/pi - 1/(2 pi) > 0 (excitatory centre).
  EXPECT_GT(c->Kernels()[0][0][1][1].item<double>(), 0.0);
}

TEST(TunedNormalizationTest, ColumnsSumToOneAndOpponentStrongest) {
  at::manual_seed(1);
  TunedNormalization tn(256);
  at::Tensor g = tn->Weights();
  EXPECT_TRUE(at::allclose(g.sum(0), at::ones({256}), 1e-5, 1e-5));
  // Column j couples most strongly to channel i with (j - i) mod C == C/2.
  at::Tensor arg = g.argmax(0);
  for (int64_t j : {0, 5, 200}) EXPECT_EQ(arg[j].item<int64_t>(), (j + 128) % 256) << j;
  at::Tensor x = at::rand({2, 256, 16, 16});
  at::Tensor y = tn->forward(x);
  // y = x / (Gx + 1) computed by hand for one pixel.
  at::Tensor px = x.select(2, 3).select(2, 4);  // [2, 256]
  at::Tensor expect = px / (at::matmul(px, g.t()) + 1.0);
  EXPECT_TRUE(at::allclose(y.select(2, 3).select(2, 4), expect, 1e-5, 1e-6));
  EXPECT_TRUE((y.abs() <= x.abs() + 1e-6).all().item<bool>());  // non-negative input shrinks
}

TEST(DivisiveNormalizationTest, ShapeKernelsPositiveAndFormula) {
  at::manual_seed(2);
  DivisiveNormalization dn(32, 3);
  at::Tensor k = dn->Kernels();
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{32, 32, 3, 3}));
  EXPECT_GE(k.min().item<double>(), 0.0);
  at::Tensor x = at::rand({2, 32, 8, 8});
  at::Tensor y = dn->forward(x);
  EXPECT_TRUE(at::allclose(y, x / (at::conv2d(x, k, {}, 1, 1) + dn->bias.abs()), 1e-5, 1e-6));
  // Zero input stays zero (the |b| > 0 floor prevents division by zero).
  EXPECT_EQ(dn->forward(at::zeros({1, 32, 8, 8})).abs().max().item<double>(), 0.0);
}

TEST(LocallyConnectedV1Test, EqualsConvWithSharedKernelPadding1) {
  LocallyConnected2dOptions o;
  o.in_channels = o.out_channels = 8;
  o.in_height = o.in_width = 8;
  o.kernel = 3;
  o.padding = 1;
  o.bias = false;
  o.init = "normal";
  LocallyConnected2d lc(o);
  EXPECT_NEAR(lc->weight.std().item<double>(), 1.0, 0.05);  // N(0,1), unscaled
  at::Tensor k = at::randn({8, 8, 3, 3});
  {
    at::NoGradGuard ng;
    lc->weight.copy_(k.view({8, 72}).t().unsqueeze(0).expand({64, 72, 8}));
  }
  at::Tensor x = at::randn({2, 8, 8, 8});
  EXPECT_TRUE(at::allclose(lc->forward(x), at::conv2d(x, k, {}, 1, 1), 1e-4, 1e-4));
}

TEST(PolarTransformTest, MasksNonEmptyAndConstantStaysConstant) {
  PolarTransformOptions o;  // 32 -> 16, 18 rings x 30 sectors
  PolarTransform pt(o);
  EXPECT_EQ(pt->rings(), 18);
  ASSERT_EQ(pt->masks.sizes(), (std::vector<int64_t>{18 * 30, 32 * 32}));
  EXPECT_GT(pt->masks.sum(1).min().item<double>(), 0.0);  // every mask non-empty
  at::Tensor x = at::full({2, 4, 32, 32}, 3.5);
  at::Tensor y = pt->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 4, 16, 16}));
  EXPECT_TRUE(at::allclose(y, at::full_like(y, 3.5), 1e-5, 1e-5));
  // Reference fill keeps empty peripheral sectors (cells read 0).
  o.outer_fill = "zero";
  PolarTransform ref(o);
  EXPECT_EQ(ref->masks.sum(1).min().item<double>(), 0.0);
  // The foveal ring 0 (r < 1) is the single centre pixel (16, 16).
  at::Tensor img = at::zeros({1, 1, 32, 32});
  img[0][0][16][16] = 1.0;
  at::Tensor polar = pt->PolarMap(img);
  EXPECT_TRUE(at::allclose(polar[0][0][0], at::ones({30})));
  EXPECT_EQ(polar[0][0][5].abs().max().item<double>(), 0.0);
}

TEST(V1ResNetTest, VariantStructureIndependentOfBuildOrder) {
  auto build = [](const std::string& v) {
    auto o = ParseV1ResNetOptions({{"variant", v}, {"image_size", 32}, {"width_divisor", 8},
                                   {"blocks", {3, 1, 1, 1}}},
                                  10);
    EXPECT_TRUE(o.ok()) << o.status();
    return V1ResNet(*o);
  };
  std::map<std::string, std::string> first;
  for (const auto& v : V1VariantNames()) first[v] = build(v)->Describe();
  // Rebuild in reverse order: identical structure for every variant.
  auto names = V1VariantNames();
  for (auto it = names.rbegin(); it != names.rend(); ++it) EXPECT_EQ(build(*it)->Describe(), first[*it]);
  EXPECT_NE(first["composite_a"].find("stem=polar"), std::string::npos);
  EXPECT_NE(first["composite_d"].find("stem=maxpool"), std::string::npos);
  EXPECT_NE(first["composite_a"].find("layer1.0.conv2=conv+dog,norm=tuned"), std::string::npos);
  EXPECT_NE(first["composite_a"].find("layer1.2.conv2=lc,norm=tuned"), std::string::npos);
  EXPECT_NE(first["local_rf"].find("layer1.2.conv2=dropout+lc,norm=none"), std::string::npos);
  EXPECT_NE(first["center_surround"].find("layer1.2.conv2=conv+dog"), std::string::npos);
  EXPECT_EQ(first["resnet50"].find("dog"), std::string::npos);
}

TEST(V1ResNetTest, MiniForwardAndBackwardForEveryVariant) {
  at::manual_seed(3);
  for (const auto& v : {"resnet50", "composite_a", "div_norm", "local_rf"}) {
    auto o = ParseV1ResNetOptions({{"variant", v}, {"image_size", 32}, {"width_divisor", 8},
                                   {"blocks", {3, 1, 1, 1}}},
                                  10);
    ASSERT_OK(o);
    V1ResNet m(*o);
    ModelOutput out = m->Forward(at::rand({2, 3, 32, 32}));
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10})) << v;
    EXPECT_EQ(out.layers[0].sizes(), (std::vector<int64_t>{2, 32, 8, 8})) << v;
    EXPECT_EQ(m->feature_dim(), 256);
    out.logits.sum().backward();
    for (const auto& p : m->parameters()) EXPECT_TRUE(p.grad().defined()) << v;
  }
  EXPECT_FALSE(ParseV1ResNetOptions({{"variant", "composite_z"}}, 10).ok());
  EXPECT_FALSE(ParseV1ResNetOptions({{"variant", "local_rf"}, {"blocks", {2, 1, 1, 1}}}, 10).ok());
}

TEST(CorruptionsTest, EverySeverityChangesImagesReproducibly) {
  at::manual_seed(4);
  at::Tensor img = at::rand({2, 3, 32, 32});
  for (const auto& name : CorruptionNames()) {
    for (int s : {1, 5}) {
      at::Generator g1 = at::detail::createCPUGenerator(9), g2 = at::detail::createCPUGenerator(9);
      auto a = Corrupt(img, name, s, g1);
      ASSERT_OK(a);
      auto b = Corrupt(img, name, s, g2);
      ASSERT_OK(b);
      EXPECT_EQ(a->sizes(), img.sizes()) << name;
      EXPECT_TRUE(at::equal(*a, *b)) << name << " not reproducible";
      EXPECT_GE(a->min().item<double>(), 0.0) << name;
      EXPECT_LE(a->max().item<double>(), 1.0) << name;
      EXPECT_GT((*a - img).abs().mean().item<double>(), 1e-4) << name << " severity " << s;
    }
  }
  at::Generator g = at::detail::createCPUGenerator(1);
  EXPECT_EQ(Corrupt(img, "hail", 1, g).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Corrupt(img, "contrast", 6, g).ok());
  // Contrast closed form: (x - mean) * c + mean with c = 0.4 at severity 1.
  auto c = Corrupt(img, "contrast", 1, g);
  at::Tensor mean = img.mean({2, 3}, true);
  EXPECT_TRUE(at::allclose(*c, ((img - mean) * 0.4 + mean).clamp(0, 1), 1e-5, 1e-6));
  // Brightness keeps hue: a grey pixel stays grey.
  at::Tensor grey = at::full({1, 3, 4, 4}, 0.3);
  auto b = Corrupt(grey, "brightness", 2, g);
  EXPECT_TRUE(at::allclose(*b, at::full_like(grey, 0.5), 1e-5, 1e-6));
}

TEST(CorruptionsTest, AllFifteenInModelsMdOrder) {
  const std::vector<std::string> want = {
      "brightness", "defocus_blur", "fog", "gaussian_noise", "impulse_noise",
      "motion_blur", "shot_noise", "zoom_blur", "contrast", "elastic_transform",
      "frost", "glass_blur", "jpeg_compression", "pixelate", "snow"};
  EXPECT_EQ(CorruptionNames(), want);
}

double MeanAbsChange(const at::Tensor& in, int severity, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  auto out = Corrupt(in, "frost", severity, g);
  EXPECT_TRUE(out.ok()) << out.status();
  return (*out - in).abs().mean().item<double>();
}

TEST(CorruptionsTest, FrostIsSeededMonotoneInSeverityAndBrightensDarkImages) {
  at::Tensor grey = at::full({4, 3, 32, 32}, 0.5);
  for (uint64_t seed : {1, 2, 3, 4}) {
    double prev = 0;
    for (int s = 1; s <= 5; ++s) {
      const double d = MeanAbsChange(grey, s, seed);
      EXPECT_GT(d, prev + 0.003) << "seed " << seed << " severity " << s;
      prev = d;
    }
  }
  at::Tensor dark = at::full({4, 3, 32, 32}, 0.05);
  for (int s : {1, 3, 5}) {
    at::Generator g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
    at::Generator g3 = at::detail::createCPUGenerator(8);
    auto a = Corrupt(dark, "frost", s, g1);
    auto b = Corrupt(dark, "frost", s, g2);
    auto c = Corrupt(dark, "frost", s, g3);
    ASSERT_OK(a);
    ASSERT_OK(b);
    ASSERT_OK(c);
    EXPECT_TRUE(at::equal(*a, *b)) << "same seed, same frost";
    EXPECT_FALSE(at::allclose(*a, *c)) << "another seed, other frost";
    EXPECT_GE(a->min().item<double>(), 0.0);
    EXPECT_LE(a->max().item<double>(), 1.0);
    // Frost adds light: a dark image gets brighter, and bluish (B > R).
    EXPECT_GT(a->mean().item<double>(), dark.mean().item<double>() + 0.05) << s;
    EXPECT_GT((*a)[0][2].mean().item<double>(), (*a)[0][0].mean().item<double>()) << s;
    // The images of a batch get different crops.
    EXPECT_FALSE(at::allclose((*a)[0], (*a)[1])) << s;
  }
  // The clip: a white image stays white at severity 1 (c0 = 1).
  at::Tensor white = at::ones({1, 3, 32, 32});
  at::Generator g = at::detail::createCPUGenerator(1);
  EXPECT_TRUE(at::equal(*Corrupt(white, "frost", 1, g), white));
  // Non-square images work.
  auto rect = Corrupt(at::full({2, 3, 20, 36}, 0.3), "frost", 2, g);
  ASSERT_OK(rect);
  EXPECT_EQ(rect->sizes(), (std::vector<int64_t>{2, 3, 20, 36}));
}

TEST(CorruptionsTest, FrostTextureIsBimodalIceOnADarkGround) {
  at::Generator g = at::detail::createCPUGenerator(3);
  at::Tensor t = FrostTexture(96, 32, g);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 96, 96}));
  EXPECT_GE(t.min().item<double>(), 0.0);
  EXPECT_LE(t.max().item<double>(), 1.0);
  at::Tensor lum = t.mean(0);
  const double dark = (lum < 0.3).to(at::kDouble).mean().item<double>();
  const double bright = (lum > 0.6).to(at::kDouble).mean().item<double>();
  EXPECT_GT(dark, 0.2);
  EXPECT_GT(bright, 0.1);
  EXPECT_GT(t[2].mean().item<double>(), t[0].mean().item<double>());  // bluish
}

TEST(CorruptionsTest, EvaluationLoopOnTwoImages) {
  at::Tensor images = at::rand({2, 3, 32, 32});
  at::Tensor labels = at::tensor({0, 1}, at::kLong);
  // A "model" that answers 0 for dark images and 1 for bright ones.
  auto predict = [](const at::Tensor& x) {
    at::Tensor m = x.mean({1, 2, 3});
    return at::stack({0.5 - m, m - 0.5}, 1);
  };
  images[0].mul_(0.5);
  images[1] = images[1] * 0.5 + 0.5;
  BatchVisitor batches = [&](const std::function<void(const at::Tensor&, const at::Tensor&)>& f) {
    f(images, labels);
  };
  auto r = EvaluateCorruptionRobustness(predict, batches, {"contrast", "gaussian_noise"}, 3);
  ASSERT_OK(r);
  EXPECT_EQ(r->accuracy.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(r->clean_accuracy, 1.0);
  EXPECT_NEAR(r->mean_accuracy, r->accuracy.mean().item<double>(), 1e-12);
  nlohmann::json j = r->ToJson();
  EXPECT_EQ(j["accuracy"]["contrast"].size(), 5u);
  const std::string path = ::testing::TempDir() + "/robustness.png";
  WriteRobustnessPng(path, *r);
  EXPECT_GT(ReadPngRgb(path).size(0), 0);
  EXPECT_FALSE(EvaluateCorruptionRobustness(predict, batches, {"nope"}, 3).ok());
}

TEST(CorruptionsTest, CellsDoNotDependOnTheOtherCellsAndSeveritiesCanBeChosen) {
  at::manual_seed(2);
  at::Tensor images = at::rand({3, 3, 32, 32});
  at::Tensor labels = at::tensor({0, 1, 0}, at::kLong);
  std::vector<double> seen;  // checksum of every batch the model sees
  auto predict = [&](const at::Tensor& x) {
    seen.push_back(x.sum().item<double>());
    return at::zeros({x.size(0), 2});
  };
  BatchVisitor batches = [&](const std::function<void(const at::Tensor&, const at::Tensor&)>& f) {
    f(images, labels);
  };
  RobustnessOptions o;
  o.corruptions = {"contrast", "frost"};
  o.severities = {2, 4};
  o.seed = 11;
  auto r = EvaluateCorruptionRobustness(predict, batches, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->accuracy.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(r->clean_accuracy, 2.0 / 3, 1e-12);  // always answers 0
  nlohmann::json j = r->ToJson();
  EXPECT_EQ(j["severities"], nlohmann::json({2, 4}));
  EXPECT_NEAR(j["relative"].get<double>(), r->mean_accuracy / r->clean_accuracy, 1e-12);
  ASSERT_EQ(seen.size(), 5u);  // clean + 2 x 2 cells
  const std::vector<double> frost_all = {seen[3], seen[4]};
  seen.clear();
  o.corruptions = {"frost"};
  ASSERT_OK(EvaluateCorruptionRobustness(predict, batches, o));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1], frost_all[0]);
  EXPECT_EQ(seen[2], frost_all[1]);
  // Severity range and cancellation.
  o.severities = {0};
  EXPECT_EQ(EvaluateCorruptionRobustness(predict, batches, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.severities = {1};
  o.before_corruption = [](size_t, const std::string&) { return absl::CancelledError("stop"); };
  EXPECT_EQ(EvaluateCorruptionRobustness(predict, batches, o).status().code(), absl::StatusCode::kCancelled);
}

TEST(CorruptionsTest, ImageRowsPngHasOneRowPerLabel) {
  const std::string path = ::testing::TempDir() + "/rows.png";
  WriteImageRowsPng(path, "EXAMPLES", {{"clean", at::rand({4, 3, 8, 8})}, {"frost", at::rand({4, 1, 8, 8})}}, 3);
  at::Tensor png = ReadPngRgb(path);
  // Two rows of 8 * 3 + 4 px under a 40 px title band, + 8 px margin.
  EXPECT_EQ(png.size(0), 40 + 2 * (8 * 3 + 4) + 8);
}

}  // namespace
}  // namespace topolab::science
