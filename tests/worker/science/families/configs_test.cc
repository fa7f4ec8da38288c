// The families' example experiments (deploy/examples/{alltnn,v1resnet,
// expansion}-*.yaml) validate against the config schema, and every model
// section builds through the model factory (model.family dispatch) into a
// network whose forward pass works on one image of the configured size.
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "proto/config/experiment_config.h"
#include "tests/test_util.h"
#include "worker/science/models/model_factory.h"

namespace topolab::science {
namespace {

std::string ReadExample(const std::string& name) {
  std::ifstream in(std::string(TOPOLAB_SOURCE_DIR) + "/deploy/examples/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FamilyExamplesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyExamplesTest, ValidatesAndBuilds) {
  config::ParseOptions po;
  po.default_owner = "test";
  auto spec = config::ParseExperimentYaml(ReadExample(GetParam()), po);
  ASSERT_OK(spec);
  ASSERT_FALSE(spec->stages.empty());
  const nlohmann::json& job = spec->stages[0].job_spec;
  ASSERT_TRUE(job.contains("model"));
  const bool small = GetParam().find("fmnist") != std::string::npos;
  // The full-size models hold 0.4-1.4 GB of weights: schema only for those.
  if (!small) return;
  auto model = MakeModel(job["model"], 10);
  ASSERT_OK(model);
  EXPECT_EQ((*model)->family(), job["model"]["family"].get<std::string>());
  {
    const int64_t side = job["data"]["image_size"].get<int64_t>();
    at::NoGradGuard ng;
    (*model)->eval();
    ModelOutput out = (*model)->Forward(at::zeros({1, 3, side, side}));
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{1, 10}));
    EXPECT_EQ(out.layers.size(), (*model)->LayerNames().size());
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, FamilyExamplesTest,
                         ::testing::Values("alltnn-fmnist.yaml", "v1resnet-fmnist.yaml",
                                           "expansion-fmnist.yaml", "alltnn-ecoset.yaml",
                                           "v1resnet-imagenet.yaml", "expansion-full.yaml"));

TEST(FamilySchemaTest, RejectsUnknownFamilyKey) {
  config::ParseOptions po;
  po.default_owner = "test";
  std::string yaml = ReadExample("alltnn-fmnist.yaml");
  yaml.replace(yaml.find("  preset: mini"), 14, "  presett: mini");
  auto spec = config::ParseExperimentYaml(yaml, po);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("presett"), std::string::npos) << spec.status();
}

}  // namespace
}  // namespace topolab::science
