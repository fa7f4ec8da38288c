// End to end, per model family: the shipped example configs
// (deploy/examples/{alltnn,v1resnet,expansion}-fmnist.yaml) go through the
// real scheduler, a real worker and the CLI, and their artifacts are pulled.
//
// Each example is submitted as written except for sizes: a few training
// steps, small data subsets and few images per analysis, so the three
// pipelines finish in a couple of minutes on 2 cores. Every stage, every
// analysis and every file transfer the full-size run uses is exercised.
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "proto/sha256.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace topolab {
namespace itest {
namespace {

using Json = nlohmann::json;

// The example at `path` with its sizes shrunk (see the file comment).
std::string ShrinkExample(const fs::path& path) {
  YAML::Node doc = YAML::LoadFile(path.string());
  YAML::Node data = doc["data"];
  data["train_subset"] = 256;
  data["test_subset"] = 64;
  for (YAML::Node stage : doc["stages"]) {
    const std::string kind = stage["kind"].as<std::string>();
    if (kind == "train") {
      stage["max_steps"] = 3;
      stage["batch_size"] = 8;
      stage["eval_batches"] = 1;
      stage["log_every"] = 1;
      stage["checkpoint_every"] = 2;
      stage["warmup_steps"] = 0;
    } else if (kind == "extract") {
      stage["batch_size"] = 32;
      if (stage["categories"]) stage["categories"]["per_category"] = 3;
      YAML::Node wiring;
      wiring["images"] = 8;
      stage["wiring"] = wiring;
      if (!stage["analyses"]) continue;
      for (const YAML::Node& a : stage["analyses"]) {
        const std::string name = a.as<std::string>();
        YAML::Node opts = stage[name] ? stage[name] : YAML::Node(YAML::NodeType::Map);
        if (name == "alltnn_maps") {
          opts["per_category"] = 3;
          opts["images"] = 8;
        } else if (name == "corruption_robustness") {
          opts["images"] = 16;
          opts["corruptions"] = std::vector<std::string>{"gaussian_noise", "frost"};
          opts["severities"] = std::vector<int>{1, 5};
          opts["examples"] = 2;
        } else if (name == "pca") {
          opts["images"] = 48;
        } else if (name == "linear_probe") {
          opts["train_images"] = 64;
          opts["test_images"] = 32;
        }
        stage[name] = opts;
      }
    }
  }
  YAML::Emitter out;
  out << doc;
  return out.c_str();
}

struct Example {
  std::string file;                  // under deploy/examples/
  std::string extract_stage;         // its extract stage id
  std::vector<std::string> analyses; // expected under metrics.json analyses
};

class FamiliesTest : public IntegrationTest {};

TEST_F(FamiliesTest, EachFamilyExampleRunsThroughSchedulerAndWorkerAndPulls) {
  const std::vector<Example> examples = {
      {"alltnn-fmnist", "extract", {"alltnn_maps"}},
      {"v1resnet-fmnist", "extract", {"corruption_robustness"}},
      {"expansion-fmnist", "extract", {"pca", "linear_probe"}},
  };
  StartScheduler("127.0.0.1:0");
  StartWorker("worker");
  std::vector<std::string> ids;
  for (const Example& ex : examples) {
    const fs::path src = fs::path(TOPOLAB_SOURCE_DIR) / "deploy" / "examples" / (ex.file + ".yaml");
    ids.push_back(Submit(ex.file, ShrinkExample(src)));
  }
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    SCOPED_TRACE(ex.file);
    ASSERT_EQ(WaitForEnd(ids[i], seconds(900)), v1::EXPERIMENT_SUCCEEDED)
        << Get(ids[i]).value_or(v1::Experiment()).DebugString() << "\n"
        << Cli("logs " + ids[i]).second;

    const v1::Experiment done = Get(ids[i]).value_or(v1::Experiment());
    for (const v1::Job& job : done.jobs()) {
      std::printf("%s/%s: %.1f s\n", ex.file.c_str(), job.stage_id().c_str(),
                  static_cast<double>(job.finished_at_ms() - job.started_at_ms()) / 1000.0);
    }
    const fs::path out = root_ / ("pulled-" + ex.file);
    auto [rc, text] = Cli("pull " + ids[i] + " -o " + out.string());
    ASSERT_EQ(rc, 0) << text;
    std::vector<v1::Artifact> arts = Artifacts(ids[i]);
    ASSERT_FALSE(arts.empty());
    int pngs = 0;
    for (const v1::Artifact& a : arts) {
      const fs::path file = out / a.stage_id() / a.name();
      ASSERT_TRUE(fs::exists(file)) << file;
      absl::StatusOr<std::string> sha = Sha256File(file.string());
      ASSERT_OK(sha);
      EXPECT_EQ(*sha, a.sha256()) << a.name();
      if (a.stage_id() == ex.extract_stage && file.extension() == ".png") ++pngs;
    }
    EXPECT_GT(pngs, 0);
    EXPECT_TRUE(fs::exists(out / "train" / "checkpoints" / "final.pt") ||
                fs::exists(out / "probe" / "checkpoints" / "final.pt"));
    const Json metrics = Json::parse(ReadFile(out / ex.extract_stage / "metrics.json"));
    ASSERT_TRUE(metrics.contains("analyses")) << metrics.dump().substr(0, 2000);
    for (const std::string& name : ex.analyses) {
      ASSERT_TRUE(metrics["analyses"].contains(name)) << name;
      EXPECT_FALSE(metrics["analyses"][name].empty()) << name;
      bool has_dir_file = false;
      for (const v1::Artifact& a : arts) {
        if (a.stage_id() == ex.extract_stage && a.name().rfind(name + "/", 0) == 0) has_dir_file = true;
      }
      EXPECT_TRUE(has_dir_file) << "no artifact under " << name << "/";
    }
  }
}

}  // namespace
}  // namespace itest
}  // namespace topolab
