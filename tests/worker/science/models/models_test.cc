// ResNet-18 (torchvision shape, block outputs, heads, init), the model
// factory and checkpoints (bit-exact round trip, error cases).
#include <filesystem>
#include <fstream>
#include <map>

#include <torch/optim/sgd.h>

#include "tests/test_util.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/models/resnet.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("topolab_models_test_" + name + "_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

ResNet18Options Opts(int64_t classes, int64_t proj = 128) {
  ResNet18Options o;
  o.num_classes = classes;
  o.projection_dim = proj;
  return o;
}

TEST(ResNet18Test, BlockNames) {
  EXPECT_EQ(ResNet18BlockNames(), (std::vector<std::string>{"layer1.0", "layer1.1", "layer2.0", "layer2.1",
                                                            "layer3.0", "layer3.1", "layer4.0", "layer4.1"}));
}

TEST(ResNet18Test, BlockShapeFormulaMatchesTdannTableAt224) {
  // tdann.md §1: 64x56x56, 128x28x28, 256x14x14, 512x7x7 (two blocks each).
  const std::vector<std::array<int64_t, 3>> expected = {{64, 56, 56},  {64, 56, 56},  {128, 28, 28}, {128, 28, 28},
                                                        {256, 14, 14}, {256, 14, 14}, {512, 7, 7},   {512, 7, 7}};
  EXPECT_EQ(ResNet18BlockShapes(224), expected);
  int64_t units = 0;
  for (const auto& s : ResNet18BlockShapes(224)) units += s[0] * s[1] * s[2];
  EXPECT_EQ(units, 2 * (200704 + 100352 + 50176 + 25088));
  // Odd sizes round up at every stride-2 stage: 33 -> 17 -> 9 -> 9, 5, 3, 2.
  EXPECT_EQ(ResNet18BlockShapes(33)[0], (std::array<int64_t, 3>{64, 9, 9}));
  EXPECT_EQ(ResNet18BlockShapes(33)[7], (std::array<int64_t, 3>{512, 2, 2}));
}

class ResNet18ShapeTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(ResNet18ShapeTest, BlockOutputsMatchFormula) {
  const int64_t size = GetParam();
  torch::manual_seed(0);
  ResNet18 model(Opts(10));
  model->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = at::randn({2, 3, size, size});
  TrunkOutput out = model->Trunk(x);
  ASSERT_EQ(out.blocks.size(), 8u);
  const auto shapes = ResNet18BlockShapes(size);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(out.blocks[i].sizes(), (std::vector<int64_t>{2, shapes[i][0], shapes[i][1], shapes[i][2]}))
        << ResNet18BlockNames()[i];
    EXPECT_GE(out.blocks[i].min().item<float>(), 0.0f) << "block outputs are post-ReLU";
  }
  EXPECT_EQ(out.pooled.sizes(), (std::vector<int64_t>{2, 512}));
  EXPECT_TRUE(at::allclose(out.pooled, out.blocks[7].mean({2, 3})));
}

INSTANTIATE_TEST_SUITE_P(Sizes, ResNet18ShapeTest, ::testing::Values(32, 64));

TEST(ResNet18Test, ExpectedShapesAt32And64) {
  EXPECT_EQ(ResNet18BlockShapes(32)[0], (std::array<int64_t, 3>{64, 8, 8}));
  EXPECT_EQ(ResNet18BlockShapes(32)[7], (std::array<int64_t, 3>{512, 1, 1}));
  EXPECT_EQ(ResNet18BlockShapes(64)[2], (std::array<int64_t, 3>{128, 8, 8}));
  EXPECT_EQ(ResNet18BlockShapes(64)[7], (std::array<int64_t, 3>{512, 2, 2}));
}

TEST(ResNet18Test, FlattenConventionIsChannelMajor) {
  torch::manual_seed(1);
  ResNet18 model(Opts(10));
  model->eval();
  torch::NoGradGuard no_grad;
  ModelOutput out = model->Forward(at::randn({2, 3, 64, 64}));
  const at::Tensor& block = out.layers[2];  // layer2.0: [2,128,8,8]
  const at::Tensor flat = block.flatten(1);
  const int64_t H = block.size(2), W = block.size(3);
  for (auto [c, h, w] : std::vector<std::array<int64_t, 3>>{{0, 0, 0}, {5, 3, 7}, {127, 7, 1}, {64, 2, 2}}) {
    EXPECT_EQ(flat[1][c * H * W + h * W + w].item<float>(), block[1][c][h][w].item<float>());
  }
}

TEST(ResNet18Test, TorchvisionParameterNamesCountAndInit) {
  torch::manual_seed(2);
  ResNet18 model(Opts(1000, /*proj=*/0));
  int64_t params = 0;
  std::map<std::string, at::Tensor> named;
  for (const auto& p : model->named_parameters()) {
    params += p.value().numel();
    named[p.key()] = p.value();
  }
  EXPECT_EQ(params, 11689512);  // torchvision.models.resnet18().parameters()
  for (const char* key : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                          "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.conv2.weight",
                          "fc.weight", "fc.bias"}) {
    EXPECT_TRUE(named.count(key)) << key;
  }
  EXPECT_FALSE(named.count("layer1.0.downsample.0.weight"));
  // kaiming_normal_(fan_out, relu): std = sqrt(2 / (out_channels * k * k)).
  const at::Tensor w = named["layer4.1.conv2.weight"];
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (512 * 9)), 0.01 * std::sqrt(2.0 / (512 * 9)));
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(named["conv1.weight"].std().item<double>(), std::sqrt(2.0 / (64 * 49)), 0.03 * std::sqrt(2.0 / (64 * 49)));
  EXPECT_TRUE(at::equal(named["layer3.0.bn1.weight"], at::ones({256})));
  EXPECT_TRUE(at::equal(named["layer3.0.bn1.bias"], at::zeros({256})));
  // nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)).
  EXPECT_LE(named["fc.weight"].abs().max().item<double>(), 1.0 / std::sqrt(512.0));
  std::map<std::string, at::Tensor> buffers;
  for (const auto& b : model->named_buffers()) buffers[b.key()] = b.value();
  EXPECT_TRUE(buffers.count("layer1.0.bn1.running_mean"));
  EXPECT_TRUE(buffers.count("bn1.num_batches_tracked"));
}

TEST(ResNet18Test, HeadsShapesAndUnitNormProjections) {
  torch::manual_seed(3);
  ResNet18 model(Opts(10, 128));
  ModelOutput out = model->Forward(at::randn({4, 3, 32, 32}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{4, 512}));
  at::Tensor z = model->Project(out.features);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{4, 128}));
  EXPECT_TRUE(at::allclose(z.norm(2, 1), at::ones({4}), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(model->Classify(out.features), out.logits));
  EXPECT_TRUE(model->has_projection_head());
  // Gradients reach the first conv through the projection head.
  z.sum().backward();
  EXPECT_GT(model->named_parameters()["conv1.weight"].grad().abs().sum().item<double>(), 0.0);

  ResNet18 headless(Opts(0, 0));
  ModelOutput h = headless->Forward(at::randn({2, 3, 32, 32}));
  EXPECT_FALSE(h.logits.defined());
  EXPECT_FALSE(headless->has_projection_head());
  EXPECT_THROW(headless->Project(h.features), c10::Error);
}

TEST(ModelFactoryTest, BuildsResNet18AndRejectsUnknownFamilies) {
  torch::manual_seed(4);
  auto m = MakeModel(nlohmann::json::object(), 7);
  ASSERT_OK(m);
  EXPECT_EQ((*m)->family(), "resnet18");
  EXPECT_EQ((*m)->num_classes(), 7);
  EXPECT_EQ((*m)->LayerNames().size(), 8u);
  auto explicit_classes = MakeModel({{"family", "resnet18"}, {"num_classes", 3}, {"projection_dim", 16}}, 7);
  ASSERT_OK(explicit_classes);
  EXPECT_EQ((*explicit_classes)->num_classes(), 3);
  at::Tensor z = (*explicit_classes)->Project(at::randn({2, 512}));
  EXPECT_EQ(z.size(1), 16);
  auto unknown = MakeModel({{"family", "vgg"}}, 10);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("model.family"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("resnet18"), std::string::npos);
  EXPECT_EQ(MakeModel({{"num_classes", -1}}, 10).status().code(), absl::StatusCode::kInvalidArgument);
  // Same seed -> same weights.
  torch::manual_seed(9);
  auto a = MakeModel(nullptr, 10);
  torch::manual_seed(9);
  auto b = MakeModel(nullptr, 10);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_TRUE(at::equal((*a)->parameters()[0], (*b)->parameters()[0]));
}

// All parameters and buffers equal, exactly.
void ExpectSameState(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  auto ba = a.named_buffers(), bb = b.named_buffers();
  ASSERT_EQ(ba.size(), bb.size());
  for (const auto& x : ba) EXPECT_TRUE(at::equal(x.value(), bb[x.key()])) << x.key();
}

void TrainStep(ResNet18& model, torch::optim::SGD& opt, const at::Tensor& x, const at::Tensor& y) {
  opt.zero_grad();
  at::Tensor loss = at::cross_entropy_loss(model->Forward(x).logits, y);
  loss.backward();
  opt.step();
}

TEST(CheckpointTest, RoundTripIsBitExactIncludingOptimizerMomentum) {
  fs::path dir = TempDir("roundtrip");
  const std::string path = (dir / "sub" / "ckpt.pt").string();
  at::manual_seed(5);
  const at::Tensor x = at::randn({4, 3, 32, 32});
  const at::Tensor y = at::tensor({0, 1, 2, 3}, at::TensorOptions().dtype(at::kLong));

  torch::manual_seed(10);
  ResNet18 a(Opts(4, 8));
  torch::optim::SGD opt_a(a->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-4));
  TrainStep(a, opt_a, x, y);  // creates momentum buffers, moves BN stats
  nlohmann::json meta = {{"family", "resnet18"}, {"class_names", {"a", "b", "c", "d"}}};
  ASSERT_OK(SaveCheckpoint(path, *a, &opt_a, 17, meta));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  torch::manual_seed(11);  // different initial weights
  ResNet18 b(Opts(4, 8));
  torch::optim::SGD opt_b(b->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-4));
  absl::StatusOr<CheckpointInfo> info = LoadCheckpoint(path, *b, &opt_b);
  ASSERT_OK(info);
  EXPECT_EQ(info->step, 17);
  EXPECT_EQ(info->meta, meta);
  EXPECT_TRUE(info->has_optimizer);
  ExpectSameState(*a, *b);
  // The same next step on both: equal only if the momentum was restored.
  TrainStep(a, opt_a, x, y);
  TrainStep(b, opt_b, x, y);
  ExpectSameState(*a, *b);

  absl::StatusOr<CheckpointInfo> cheap = ReadCheckpointInfo(path);
  ASSERT_OK(cheap);
  EXPECT_EQ(cheap->step, 17);
  fs::remove_all(dir);
}

TEST(CheckpointTest, ErrorsAreSpecific) {
  fs::path dir = TempDir("errors");
  torch::manual_seed(12);
  ResNet18 model(Opts(10, 0));
  EXPECT_EQ(LoadCheckpoint((dir / "missing.pt").string(), *model, nullptr).status().code(),
            absl::StatusCode::kNotFound);
  std::ofstream(dir / "garbage.pt") << "this is not a zip archive";
  EXPECT_EQ(LoadCheckpoint((dir / "garbage.pt").string(), *model, nullptr).status().code(),
            absl::StatusCode::kDataLoss);
  // Saved without optimizer; loading one is a FailedPrecondition.
  const std::string path = (dir / "model_only.pt").string();
  ASSERT_OK(SaveCheckpoint(path, *model, nullptr, 3, nlohmann::json::object()));
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
  EXPECT_EQ(LoadCheckpoint(path, *model, &opt).status().code(), absl::StatusCode::kFailedPrecondition);
  // Another head width: DataLoss naming the parameter, model untouched.
  ResNet18 other(Opts(5, 0));
  const at::Tensor before = other->named_parameters()["conv1.weight"].clone();
  absl::StatusOr<CheckpointInfo> mismatch = LoadCheckpoint(path, *other, nullptr);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(mismatch.status().message().find("fc.weight"), std::string::npos) << mismatch.status();
  EXPECT_TRUE(at::equal(other->named_parameters()["conv1.weight"], before)) << "failed load changed the model";
  // A model with a projection head the file lacks: missing module.
  ResNet18 with_proj(Opts(10, 8));
  absl::StatusOr<CheckpointInfo> missing = LoadCheckpoint(path, *with_proj, nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("projection"), std::string::npos) << missing.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace topolab::science
