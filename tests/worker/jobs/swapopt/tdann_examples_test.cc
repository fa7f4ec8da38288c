// The TDANN example experiments in deploy/examples validate and mean what
// their comments say (stage order, alpha of Stage D, positions wiring).
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "proto/config/experiment_config.h"
#include "tests/test_util.h"

namespace topolab::config {
namespace {

absl::StatusOr<ExperimentSpec> Load(const std::string& name) {
  std::ifstream f(std::string(TOPOLAB_SOURCE_DIR) + "/deploy/examples/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  ParseOptions o;
  o.default_owner = "test";
  return ParseExperimentYaml(ss.str(), o);
}

void CheckPipeline(const ExperimentSpec& e, double alpha, int64_t image_size) {
  ASSERT_EQ(e.stages.size(), 4u);
  EXPECT_EQ(e.stages[0].kind, "train");
  EXPECT_EQ(e.stages[1].kind, "swapopt");
  EXPECT_EQ(e.stages[2].kind, "train");
  EXPECT_EQ(e.stages[3].kind, "extract");
  const auto& pre = e.stages[0].job_spec;
  EXPECT_EQ(pre["objective"], "simclr");
  EXPECT_EQ(pre["spatial_weight"].get<double>(), 0.0);
  EXPECT_EQ(pre["data"]["image_size"], image_size);
  const auto& swap = e.stages[1].job_spec;
  EXPECT_EQ(e.stages[1].needs, std::vector<std::string>{"pretrain"});
  EXPECT_EQ(swap["swapopt"]["swaps_per_neighborhood"], 500);
  EXPECT_EQ(swap["swapopt"]["accept"], "strict");
  EXPECT_EQ(swap["swapopt"]["cost"], "two_row");
  // Stage D: a fresh model (does not need pretrain), swapopt's positions.
  const auto& tdann = e.stages[2].job_spec;
  EXPECT_EQ(e.stages[2].needs, std::vector<std::string>{"swapopt"});
  EXPECT_EQ(tdann["objective"], "simclr");
  EXPECT_EQ(tdann["simclr"]["temperature"].get<double>(), 0.1);
  EXPECT_EQ(tdann["spatial_weight"].get<double>(), alpha);
  EXPECT_EQ(tdann["positions_from"], "swapopt");
  EXPECT_EQ(tdann["spatial"]["rel_form"], "half");
  const auto& ex = e.stages[3].job_spec;
  EXPECT_EQ(ex["checkpoint_from"], "tdann");
  EXPECT_EQ(ex["positions_from"], "swapopt");
}

TEST(TdannExamplesTest, SmallPipelineValidates) {
  absl::StatusOr<ExperimentSpec> e = Load("tdann-fmnist.yaml");
  ASSERT_OK(e);
  CheckPipeline(*e, 0.25, 64);
}

TEST(TdannExamplesTest, ControlDiffersOnlyInAlpha) {
  absl::StatusOr<ExperimentSpec> e = Load("tdann-fmnist-control.yaml");
  ASSERT_OK(e);
  CheckPipeline(*e, 0.0, 64);
}

TEST(TdannExamplesTest, FullSizeUsesOfficialSettings) {
  absl::StatusOr<ExperimentSpec> e = Load("tdann-imagenet.yaml");
  ASSERT_OK(e);
  CheckPipeline(*e, 0.25, 224);
  EXPECT_EQ(e->stages[0].job_spec["epochs"], 200);
  EXPECT_EQ(e->stages[0].job_spec["optimizer"]["lr"].get<double>(), 0.6);
  EXPECT_EQ(e->stages[1].job_spec["swapopt"]["neighborhoods"], 100000);
  EXPECT_EQ(e->stages[0].job_spec["data"]["dataset"], "image_folder");
}

}  // namespace
}  // namespace topolab::config
