// Science check (label `slow`): on Fashion-MNIST at 32 px with fixed seeds, a
// ResNet-18 trained by the real `train` job with the TDANN spatial loss
// (alpha > 0) has clearly more correlated responses for nearby units than the
// same run with alpha = 0, on the same positions and held-out test images:
// near pairs are more alike than far pairs by a clearly larger margin, and
// response similarity tracks proximity (corr(r, 1/(d+1))) clearly better.
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "tests/test_util.h"
#include "worker/jobs/train/train_job.h"
#include "worker/science/data/dataset.h"
#include "worker/science/io/npy.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/tdann/sheet.h"
#include "worker/science/tdann/spatial_loss.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const char* kLayers[] = {"layer1.0", "layer1.1", "layer2.0", "layer2.1",
                         "layer3.0", "layer3.1", "layer4.0", "layer4.1"};

TEST(TdannScienceTest, SpatialLossMakesNearbyUnitsMoreCorrelated) {
  at::set_num_threads(2);
  const fs::path dir = fs::temp_directory_path() / ("tdann_science_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const Json data = {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"train_subset", 9600}};
  // Shared positions (fresh retinotopic sheets, human scale) for both runs.
  // ResNet-18 at 32 px: layer1 64x8x8, layer2 128x4x4, layer3 256x2x2, layer4 512x1x1.
  const std::map<std::string, std::pair<int64_t, int64_t>> shape = {
      {"layer1.0", {64, 8}},  {"layer1.1", {64, 8}},  {"layer2.0", {128, 4}}, {"layer2.1", {128, 4}},
      {"layer3.0", {256, 2}}, {"layer3.1", {256, 2}}, {"layer4.0", {512, 1}}, {"layer4.1", {512, 1}}};
  std::map<std::string, CorticalSheet> sheets;
  fs::create_directories(dir / "inputs" / "sheet" / "positions");
  for (const char* l : kLayers) {
    LayerSheetSpec spec{l, shape.at(l).first, shape.at(l).second, SheetScale::kHuman, 0};
    auto sheet = BuildLayerSheet(spec, 0.3, 11);
    ASSERT_OK(sheet.status());
    sheets[l] = *sheet;
    WriteNpy((dir / "inputs" / "sheet" / "positions" / (std::string(l) + ".npy")).string(),
             sheet->positions);
  }
  auto train = [&](double alpha, const std::string& name) {
    Json spec = {{"kind", "train"}, {"id", name}, {"seed", 3}, {"objective", "supervised"},
                 {"model", {{"family", "resnet18"}, {"num_classes", 10}}}, {"data", data},
                 {"epochs", 1}, {"max_steps", 300}, {"batch_size", 32},
                 {"optimizer", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 5e-4}}},
                 {"log_every", 50}, {"checkpoint_every", 0}, {"eval_batches", 0},
                 {"spatial_weight", alpha}, {"positions_from", "sheet"},
                 {"spatial", {{"pool_windows", 2000}, {"neighborhoods_per_step", 4}}}, {"needs", Json::array({"sheet"})}};
    worker::NullReporter rep;
    worker::JobContext ctx;
    ctx.spec = spec;
    ctx.out_dir = dir / name;
    ctx.inputs_dir = dir / "inputs";
    ctx.resume_dir = dir / (name + "_resume");
    ctx.threads = 2;
    ctx.reporter = &rep;
    fs::create_directories(ctx.out_dir);
    absl::Status s = worker::MakeTrainJob()->Run(ctx);
    EXPECT_TRUE(s.ok()) << s;
    return ctx.out_dir / "checkpoints" / "final.pt";
  };
  const fs::path plain = train(0.0, "alpha0");
  const fs::path spatial = train(5.0, "alpha5");

  // Responses to 512 held-out test images.
  auto test = OpenDataset(data, "test");
  ASSERT_OK(test.status());
  std::vector<int64_t> idx(512);
  for (int64_t i = 0; i < 512; ++i) idx[i] = i;
  at::Tensor images = (*test)->GetBatch(idx).first;
  const at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, at::kFloat).view({1, 3, 1, 1});
  const at::Tensor stdv = at::tensor({0.229, 0.224, 0.225}, at::kFloat).view({1, 3, 1, 1});
  images = (images - mean) / stdv;
  // Per layer with more than one location, over 100 pool windows on the
  // shared positions:
  //   fit      = mean over windows of Pearson corr(r_ij, 1/(d_ij + 1)), the
  //              quantity SL_Rel pushes up (SL_Rel = (1 - fit)/2);
  //   contrast = mean r of the nearest quarter of pairs minus mean r of the
  //              farthest quarter: "near units respond more alike".
  struct Topography {
    double fit = 0, contrast = 0;
  };
  auto topography = [&](const fs::path& ckpt) {
    auto model = MakeModel({{"family", "resnet18"}, {"num_classes", 10}}, 10);
    EXPECT_OK(model.status());
    EXPECT_OK(LoadCheckpoint(ckpt.string(), **model, nullptr).status());
    (*model)->eval();
    at::NoGradGuard no_grad;
    ModelOutput out = (*model)->Forward(images);
    std::map<std::string, Topography> result;
    const std::vector<std::string>& names = (*model)->LayerNames();
    for (size_t k = 0; k < names.size(); ++k) {
      const CorticalSheet& sh = sheets.at(names[k]);
      if (sh.height < 2) continue;
      NeighborhoodPoolOptions po;
      po.num_windows = 100;
      po.seed = 5;
      at::Tensor pool = BuildNeighborhoodPool(sh.positions, sh.hypercolumn_width_mm, po);
      at::Tensor x = out.layers[k].flatten(1);
      Topography t;
      int64_t windows = 0;
      for (int64_t w = 0; w < pool.size(0); ++w) {
        at::Tensor units = pool[w];
        at::Tensor r = LowerTriangle(ResponseCorrelation(x.index_select(1, units))).to(at::kDouble);
        at::Tensor d = LowerTriangle(DistanceSimilarity(sh.positions.index_select(0, units))).to(at::kDouble);
        at::Tensor valid = at::isfinite(r);  // silent units have no correlation
        r = r.masked_select(valid);
        d = d.masked_select(valid);
        if (r.numel() < 8) continue;
        at::Tensor rc = r - r.mean(), dc = d - d.mean();
        const double denom = (rc.norm() * dc.norm()).item<double>();
        if (denom <= 0) continue;
        t.fit += (rc * dc).sum().item<double>() / denom;
        at::Tensor order = at::argsort(d, /*dim=*/0, /*descending=*/true);  // nearest first
        const int64_t q = r.numel() / 4;
        t.contrast += (r.index_select(0, order.slice(0, 0, q)).mean() -
                       r.index_select(0, order.slice(0, r.numel() - q)).mean())
                          .item<double>();
        ++windows;
      }
      if (windows > 0) {
        t.fit /= static_cast<double>(windows);
        t.contrast /= static_cast<double>(windows);
      }
      result[names[k]] = t;
    }
    return result;
  };
  const auto a0 = topography(plain);
  const auto a1 = topography(spatial);
  Topography m0, m1;
  for (const auto& [layer, t0] : a0) {
    const Topography& t1 = a1.at(layer);
    std::printf("%s: fit alpha=0 %.3f alpha>0 %.3f | near-far r alpha=0 %.3f alpha>0 %.3f\n", layer.c_str(),
                t0.fit, t1.fit, t0.contrast, t1.contrast);
    m0.fit += t0.fit / a0.size();
    m1.fit += t1.fit / a0.size();
    m0.contrast += t0.contrast / a0.size();
    m1.contrast += t1.contrast / a0.size();
  }
  std::printf("mean: fit alpha=0 %.3f alpha>0 %.3f | near-far r alpha=0 %.3f alpha>0 %.3f\n", m0.fit, m1.fit,
              m0.contrast, m1.contrast);
  EXPECT_GT(m1.fit, m0.fit + 0.1);
  EXPECT_GT(m1.contrast, m0.contrast + 0.05);
  for (const char* l : {"layer1.0", "layer2.0"}) {
    EXPECT_GT(a1.at(l).fit, a0.at(l).fit) << l;
    EXPECT_GT(a1.at(l).contrast, a0.at(l).contrast) << l;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace topolab::science
