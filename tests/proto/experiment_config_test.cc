// Tests of the experiment YAML parser/validator (proto/config).
//
// A table of bad documents, each with the exact error prefix it must give,
// and good documents whose normalised form, defaults and hash are checked.
#include "proto/config/experiment_config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "proto/config/schema.h"
#include "proto/sha256.h"
#include "tests/test_util.h"

namespace topolab::config {
namespace {

ParseOptions Opts(bool check_paths = false) {
  ParseOptions o;
  o.default_owner = "alice";
  o.check_paths = check_paths;
  return o;
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::string prefix;  // the error message must start with this
};

// A valid header followed by the given stages block.
std::string Doc(const std::string& stages, const std::string& extra = "") {
  return "name: exp\n" + extra + "stages:\n" + stages;
}

std::vector<BadCase> BadCases() {
  const std::string train = "  - {id: t, kind: train}\n";
  return {
      {"YamlSyntax", "name: [x\n", "yaml: line 2, column 1:"},
      {"YamlBadIndent", "name: x\n  stages: 1\n bad: 2\n", "yaml: line 2"},
      {"TwoDocuments", "name: a\n---\nname: b\n", "yaml: expected one document"},
      {"EmptyDocument", "", "experiment: the document is empty"},
      {"TopLevelList", "- a\n- b\n", "experiment: the document must be a mapping"},
      {"DuplicateKey", "name: a\nname: b\nstages: []\n", "name: duplicate key (line 2, column 1)"},
      {"MissingName", "stages:\n" + train, "name: missing required key"},
      {"EmptyName", "name: \"\"\nstages:\n" + train, "name: must not be empty"},
      {"NameNotString", "name: [a]\nstages:\n" + train, "name: must be a string"},
      {"UnknownTopKey", Doc(train, "nmae: x\n"), "nmae: unknown key (did you mean \"name\"?)"},
      {"PriorityNotInt", Doc(train, "priority: high\n"), "priority: must be an integer in [-1000, 1000]"},
      {"PriorityTooHigh", Doc(train, "priority: 5000\n"), "priority: must be an integer in [-1000, 1000], got 5000"},
      {"SeedNegative", Doc(train, "seed: -1\n"), "seed: must be a non-negative integer"},
      {"DeviceUnknown", Doc(train, "resources: {device: gpu}\n"),
       "resources.device: must be one of \"cpu\", \"cuda\", got \"gpu\""},
      {"GpusNegative", Doc(train, "resources: {device: cuda, gpus: -2}\n"),
       "resources.gpus: must be a non-negative integer (at most 64), got -2"},
      {"GpuMemoryAbsurd", Doc(train, "resources: {gpu_memory_gb: 1e9}\n"),
       "resources.gpu_memory_gb: must be a number in [0, 4096]"},
      {"ResourcesNotMapping", Doc(train, "resources: cpu\n"), "resources: must be a mapping"},
      {"ModelFamilyUnknown", Doc(train, "model: {family: vgg}\n"), "model.family: must be one of \"resnet18\""},
      {"ModelKeyOfOtherFamily", Doc(train, "model: {family: alltnn, projection_dim: 64}\n"),
       "model.projection_dim: unknown key"},
      {"ImageSizeTooBig", Doc(train, "data: {image_size: 2048}\n"),
       "data.image_size: must be an integer in [8, 1024], got 2048"},
      {"ImageFolderNeedsPath", Doc(train, "data: {dataset: image_folder}\n"), "data.path: missing required key"},
      {"TrainSubsetNegative", Doc(train, "data: {train_subset: -5}\n"), "data.train_subset: must be a non-negative integer"},
      {"NoStages", "name: exp\n", "stages: missing required key"},
      {"StagesEmpty", "name: exp\nstages: []\n", "stages: must be a non-empty list of stages"},
      {"StageNotMapping", Doc("  - train\n"), "stages[0]: must be a mapping"},
      {"StageMissingId", Doc("  - {kind: train}\n"), "stages[0].id: missing required key"},
      {"StageBadId", Doc("  - {id: \"a b\", kind: train}\n"), "stages[0].id: must match [A-Za-z0-9_-]{1,64}"},
      {"StageIdTooLong", Doc("  - {id: " + std::string(65, 'a') + ", kind: train}\n"),
       "stages[0].id: must match [A-Za-z0-9_-]{1,64}"},
      {"StageMissingKind", Doc("  - {id: a}\n"), "stages[0].kind: missing required key"},
      {"StageUnknownKind", Doc("  - {id: a, kind: trian}\n"), "stages[0].kind: unknown kind \"trian\""},
      {"DuplicateStageId", Doc(train + train), "stages[1].id: duplicate stage id \"t\" (also stages[0])"},
      {"UnknownNeed", Doc(train + "  - {id: u, kind: train, needs: [foo]}\n"),
       "stages[1].needs[0]: unknown stage \"foo\""},
      {"SelfNeed", Doc("  - {id: a, kind: train, needs: [a]}\n"), "stages[0].needs[0]: stage \"a\" cannot need itself"},
      {"DuplicateNeed", Doc(train + "  - {id: u, kind: train, needs: [t, t]}\n"), "stages[1].needs[1]: duplicate \"t\""},
      {"NeedsNotList", Doc("  - {id: a, kind: train, needs: t}\n"), "stages[0].needs: must be a list of strings"},
      {"Cycle2", Doc("  - {id: a, kind: train, needs: [b]}\n  - {id: b, kind: train, needs: [a]}\n"),
       "stages: cycle: a -> b -> a"},
      {"Cycle3", Doc("  - {id: a, kind: sleep, needs: [c]}\n  - {id: b, kind: sleep, needs: [a]}\n"
                     "  - {id: c, kind: sleep, needs: [b]}\n"),
       "stages: cycle: a -> c -> b -> a"},
      {"EpochsZero", Doc("  - {id: a, kind: sleep}\n  - {id: b, kind: sleep}\n  - {id: e, kind: train, epochs: 0}\n"),
       "stages[2].epochs: must be a positive integer"},
      {"EpochsString", Doc("  - {id: a, kind: train, epochs: many}\n"), "stages[0].epochs: must be a positive integer"},
      {"EpochsFraction", Doc("  - {id: a, kind: train, epochs: 1.5}\n"), "stages[0].epochs: must be a positive integer"},
      {"BatchSizeZero", Doc("  - {id: a, kind: train, batch_size: 0}\n"),
       "stages[0].batch_size: must be a positive integer (at most 65536), got 0"},
      {"BatchSizeHuge", Doc("  - {id: a, kind: train, batch_size: 100000}\n"),
       "stages[0].batch_size: must be a positive integer (at most 65536), got 100000"},
      {"UnknownOptimizerKey", Doc("  - {id: a, kind: train, optimizer: {lrr: 0.1}}\n"),
       "stages[0].optimizer.lrr: unknown key (did you mean \"lr\"?)"},
      {"LrZero", Doc("  - {id: a, kind: train, optimizer: {lr: 0}}\n"), "stages[0].optimizer.lr: must be a positive number"},
      {"LrNan", Doc("  - {id: a, kind: train, optimizer: {lr: .nan}}\n"), "stages[0].optimizer.lr: must be a finite number"},
      {"MomentumAboveOne", Doc("  - {id: a, kind: train, optimizer: {momentum: 1.5}}\n"),
       "stages[0].optimizer.momentum: must be a number in [0, 1]"},
      {"NesterovYes", Doc("  - {id: a, kind: train, optimizer: {nesterov: yes}}\n"),
       "stages[0].optimizer.nesterov: must be true or false, got \"yes\""},
      {"NesterovQuotedTrue", Doc("  - {id: a, kind: train, optimizer: {nesterov: \"true\"}}\n"),
       "stages[0].optimizer.nesterov: must be true or false"},
      {"OptimizerNotMapping", Doc("  - {id: a, kind: train, optimizer: sgd}\n"), "stages[0].optimizer: must be a mapping"},
      {"ObjectiveUnknown", Doc("  - {id: a, kind: train, objective: byol}\n"),
       "stages[0].objective: must be one of \"supervised\", \"simclr\", got \"byol\""},
      {"SpatialLossUnknown", Doc("  - {id: a, kind: train, spatial: {loss: rell}}\n"),
       "stages[0].spatial.loss: must be one of \"rel\", \"abs\", got \"rell\" (did you mean \"rel\"?)"},
      {"SpatialWeightNegative", Doc("  - {id: a, kind: train, spatial_weight: -0.5}\n"),
       "stages[0].spatial_weight: must be a number in [0, 1000]"},
      {"SpatialLayersNotStrings", Doc("  - {id: a, kind: train, spatial: {layers: [1, 2]}}\n"),
       "stages[0].spatial.layers[0]: must be a string"},
      {"PositionsFromNotNeeded", Doc(train + "  - {id: u, kind: train, positions_from: t}\n"),
       "stages[1].positions_from: stage \"t\" is not listed in needs"},
      {"MaxAttemptsZero", Doc("  - {id: a, kind: train, max_attempts: 0}\n"),
       "stages[0].max_attempts: must be a positive integer (at most 100), got 0"},
      {"MaxAttemptsHuge", Doc("  - {id: a, kind: train, max_attempts: 101}\n"),
       "stages[0].max_attempts: must be a positive integer (at most 100), got 101"},
      {"UnknownStageKey", Doc("  - {id: a, kind: train, epocs: 3}\n"),
       "stages[0].epocs: unknown key (did you mean \"epochs\"?)"},
      {"KeyOfOtherKind", Doc("  - {id: a, kind: sleep, epochs: 3}\n"), "stages[0].epochs: unknown key"},
      {"StageResourcesOverrideBad", Doc("  - {id: a, kind: train, resources: {gpus: 1000}}\n"),
       "stages[0].resources.gpus: must be a non-negative integer (at most 64), got 1000"},
      {"StageModelOverrideBad", Doc("  - {id: a, kind: train, model: {projection_dim: 0}}\n"),
       "stages[0].model.projection_dim: must be a positive integer"},
      {"StageDataOverrideUnknownKey", Doc("  - {id: a, kind: train, data: {imagesize: 64}}\n"),
       "stages[0].data.imagesize: unknown key (did you mean \"image_size\"?)"},
      {"SwapoptNeighborhoodsZero", Doc("  - {id: a, kind: swapopt, swapopt: {neighborhoods: 0}}\n"),
       "stages[0].swapopt.neighborhoods: must be a positive integer"},
      {"SwapoptWidthNegative", Doc("  - {id: a, kind: swapopt, swapopt: {width_mm: -1}}\n"),
       "stages[0].swapopt.width_mm: must be a number in [0, 1000]"},
      {"ExtractUnknownStimulus", Doc("  - {id: a, kind: extract, stimuli: [gratings]}\n"),
       "stages[0].stimuli[0]: must be one of \"sine_gratings\", \"categories\", got \"gratings\""},
      {"ExtractEmptyStimuli", Doc("  - {id: a, kind: extract, stimuli: []}\n"), "stages[0].stimuli: must not be empty when analyses is empty (nothing to extract)"},
      {"ExtractEncodingWithoutResponses", Doc("  - {id: a, kind: extract, stimuli: [], analyses: [encoding]}\n"),
       "stages[0].encoding.responses: required with analyses: [encoding]"},
      {"ExtractEncodingTwoStimulusSources",
       Doc("  - {id: a, kind: extract, stimuli: [], analyses: [encoding],\n"
           "     encoding: {responses: r.npy, images: imgs, stimuli_npy: s.npy}}\n"),
       "stages[0].encoding: give exactly one of images (a folder) or stimuli_npy"},
      {"ExtractUnknownAnalysis", Doc("  - {id: a, kind: extract, analyses: [maps]}\n"),
       "stages[0].analyses[0]: must be one of"},
      {"AnalyzeMissingInputs", Doc("  - {id: a, kind: analyze}\n"), "stages[0].inputs.activations: missing required key"},
      {"AnalyzeStimuliWrongType", Doc("  - {id: a, kind: analyze, inputs: {activations: a.npy, positions: p.npy, "
                                      "stimuli: 3}}\n"),
       "stages[0].inputs.stimuli: must be a string or a mapping, got 3"},
      {"SleepNegative", Doc("  - {id: a, kind: sleep, seconds: -1}\n"), "stages[0].seconds: must be a number in [0, 86400]"},
      {"NestedTooDeeply", "name: x\nstages: " + std::string(100, '[') + std::string(100, ']') + "\n",
       "stages[0][0][0]"},
      {"ParserDepthLimit", "name: x\nstages: " + std::string(5000, '[') + std::string(5000, ']') + "\n",
       "yaml: line 2, column "},
      {"ControlCharInString", "name: \"a\\tb\"\nstages:\n" + train, "name: must not contain control characters"},
      // Optimizers, schedules and list-of-number keys (kList).
      {"OptimizerNameUnknown", Doc("  - {id: a, kind: train, optimizer: {name: rmsprop}}\n"),
       "stages[0].optimizer.name: must be one of \"sgd\", \"adam\", \"adamw\", got \"rmsprop\""},
      {"BetasTooShort", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: [0.9]}}\n"),
       "stages[0].optimizer.betas: must have 2 items, got 1"},
      {"BetasTooLong", Doc("  - {id: a, kind: train, optimizer: {name: adamw, betas: [0.9, 0.99, 0.999]}}\n"),
       "stages[0].optimizer.betas: must have 2 items, got 3"},
      {"BetaOne", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: [0.9, 1]}}\n"),
       "stages[0].optimizer.betas[1]: must be a number in [0, 1), got 1"},
      {"BetaNegative", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: [-0.1, 0.9]}}\n"),
       "stages[0].optimizer.betas[0]: must be a number in [0, 1), got -0.1"},
      {"BetaString", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: [0.9, fast]}}\n"),
       "stages[0].optimizer.betas[1]: must be a number in [0, 1), got \"fast\""},
      {"BetaQuotedNumber", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: [\"0.9\", 0.99]}}\n"),
       "stages[0].optimizer.betas[0]: must be a number in [0, 1), got \"0.9\""},
      {"BetaMissingItem", Doc("  - id: a\n    kind: train\n    optimizer:\n      name: adam\n      betas:\n"
                              "        - 0.9\n        -\n"),
       "stages[0].optimizer.betas[1]: must be a number, got nothing"},
      {"BetasNotList", Doc("  - {id: a, kind: train, optimizer: {name: adam, betas: 0.9}}\n"),
       "stages[0].optimizer.betas: must be a list of 2 numbers, got 0.9"},
      {"BetasWithSgd", Doc("  - {id: a, kind: train, optimizer: {betas: [0.9, 0.99]}}\n"),
       "stages[0].optimizer.betas: unknown key"},
      {"MomentumWithAdam", Doc("  - {id: a, kind: train, optimizer: {name: adam, momentum: 0.9}}\n"),
       "stages[0].optimizer.momentum: unknown key"},
      {"EpsZero", Doc("  - {id: a, kind: train, optimizer: {name: adam, eps: 0}}\n"),
       "stages[0].optimizer.eps: must be a positive number (at most 1), got 0"},
      {"ClipNegative", Doc("  - {id: a, kind: train, optimizer: {clip_grad_norm: -1}}\n"),
       "stages[0].optimizer.clip_grad_norm: must be a non-negative number, got -1"},
      {"LrScheduleStep", Doc("  - {id: a, kind: train, lr_schedule: step}\n"),
       "stages[0].lr_schedule: must be one of \"cosine\", \"constant\", \"multistep\", got \"step\""},
      {"MilestonesDecreasing", Doc("  - {id: a, kind: train, lr_schedule: multistep, lr_milestones: [80, 60]}\n"),
       "stages[0].lr_milestones[1]: must be greater than the item before it (80.0), got 60.0"},
      {"MilestonesRepeated", Doc("  - {id: a, kind: train, lr_milestones: [60, 60]}\n"),
       "stages[0].lr_milestones[1]: must be greater than the item before it"},
      {"MilestoneNegative", Doc("  - {id: a, kind: train, lr_milestones: [-1]}\n"),
       "stages[0].lr_milestones[0]: must be a number in [0, 1000000], got -1"},
      {"MilestonesNotList", Doc("  - {id: a, kind: train, lr_milestones: 60}\n"),
       "stages[0].lr_milestones: must be a list of at most 1000 numbers, got 60"},
      {"LrGammaZero", Doc("  - {id: a, kind: train, lr_gamma: 0}\n"),
       "stages[0].lr_gamma: must be a positive number (at most 1), got 0"},
      {"AlltnnLayersEmpty", Doc(train, "model: {family: alltnn, layers: []}\n"),
       "model.layers: must have 1 to 64 items, got 0"},
      {"AlltnnLayerNotMapping", Doc(train, "model: {family: alltnn, layers: [3]}\n"),
       "model.layers[0]: must be a mapping, got 3"},
      {"AlltnnLayerUnknownKey", Doc(train, "model: {family: alltnn, layers: [{kernel: 3, chanels: 8}]}\n"),
       "model.layers[0].chanels: unknown key (did you mean \"channels\"?)"},
      {"AlltnnLayerKernelZero", Doc(train, "model: {family: alltnn, layers: [{kernel: 3}, {kernel: 0}]}\n"),
       "model.layers[1].kernel: must be a positive integer (at most 64), got 0"},
      {"AlltnnLayerPoolNotBool", Doc(train, "model: {family: alltnn, layers: [{pool: 2}]}\n"),
       "model.layers[0].pool: must be true or false, got 2"},
      {"AlltnnLayerFactorsPresetCount", Doc(train, "model: {family: alltnn, preset: mini, layer_factors: [1, 1]}\n"),
       "model.layer_factors: must have 3 items (one per layer of preset mini), got 2"},
      {"AlltnnLayerFactorsLayersCount",
       Doc(train, "model: {family: alltnn, layers: [{kernel: 3}, {kernel: 3}], layer_factors: [1, 1, 1]}\n"),
       "model.layer_factors: must have 2 items (one per layer), got 3"},
      {"AlltnnLayerFactorNegative", Doc(train, "model: {family: alltnn, preset: mini, layer_factors: [1, -1, 1]}\n"),
       "model.layer_factors[1]: must be a number in [0, 1000000000], got -1"},
      {"AlltnnLayerFactorsStageOverride",
       Doc("  - {id: a, kind: train, model: {layer_factors: [1]}}\n", "model: {family: alltnn, preset: mini}\n"),
       "stages[0].model.layer_factors: must have 3 items (one per layer of preset mini), got 1"},
      {"AlltnnLayersGridEmpty",
       Doc(train, "model: {family: alltnn, image_size: 16, layers: [{kernel: 5, stride: 2, pool: true}, {kernel: 5}]}\n"),
       "model.layers[1]: output grid is empty for image_size 16"},
      {"AlltnnLayersGridEmptyPresetSize", Doc(train, "model: {family: alltnn, preset: mini, layers: [{kernel: 33}]}\n"),
       "model.layers[0]: output grid is empty for image_size 32"},
      {"V1BlocksWrongLength", Doc(train, "model: {family: v1resnet, blocks: [3, 1, 1]}\n"),
       "model.blocks: must have 4 items, got 3"},
      {"V1BlocksFraction", Doc(train, "model: {family: v1resnet, blocks: [3, 1.5, 1, 1]}\n"),
       "model.blocks[1]: must be a positive integer (at most 64), got 1.5"},
      {"V1BlocksZero", Doc(train, "model: {family: v1resnet, blocks: [3, 0, 1, 1]}\n"),
       "model.blocks[1]: must be a positive integer (at most 64), got 0"},
  };
}

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, RejectedWithExactPathPrefix) {
  const BadCase& c = GetParam();
  auto spec = ParseExperimentYaml(c.yaml, Opts());
  ASSERT_FALSE(spec.ok()) << "accepted:\n" << c.yaml;
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(spec.status().message());
  EXPECT_EQ(msg.substr(0, c.prefix.size()), c.prefix) << "yaml:\n" << c.yaml << "\nmessage: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Table, BadConfigTest, ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(BadConfigTableTest, HasAtLeastThirtyCases) { EXPECT_GE(BadCases().size(), 30u); }

TEST(ExperimentConfigTest, ErrorNamesLineAndColumn) {
  auto spec = ParseExperimentYaml("name: exp\nstages:\n  - id: a\n    kind: train\n    epochs: 0\n", Opts());
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(std::string(spec.status().message()),
            "stages[0].epochs: must be a positive integer (at most 100000), got 0 (line 5, column 13)");
}

// ------------------------------------------------------------- good configs

const char* kFull = R"(# a full pipeline
name: tdann-small
owner: bob
priority: 5
seed: 7
resources: {device: cpu}
data: {image_size: 64, train_subset: 2000}
stages:
  - id: pretrain
    kind: train
    objective: simclr
    epochs: 2
  - id: swap
    kind: swapopt
    needs: [pretrain]
    swapopt: {neighborhoods: 1000}
  - id: train2
    kind: train
    needs: [swap]
    positions_from: swap
    spatial_weight: 0.25
    optimizer: {lr: 1}
    model: {num_classes: 10}
    data: {image_size: 32}
    resources: {device: cuda, gpu_memory_gb: 16}
  - id: extract
    kind: extract
    needs: [train2, swap]
    positions_from: swap
    float16: true
)";

// The same experiment, keys reordered, flow/block style swapped, comments and
// whitespace changed, equivalent numbers written differently.
const char* kFullReordered = R"(
stages:
  - kind: train        # comment
    epochs: 2
    id: pretrain
    objective: simclr
  - {kind: swapopt, id: swap, swapopt: {neighborhoods: 1e3}, needs: [pretrain]}
  - resources:
      gpu_memory_gb: 16.0
      device: cuda
    data:
      image_size: 32
    model:
      num_classes: 10
    optimizer:
      lr: 1.0
    spatial_weight: 0.25
    positions_from: swap
    needs:
      - swap
    kind: train
    id: train2
  - float16: true
    positions_from: swap
    needs: [train2, swap]
    kind: extract
    id: extract
seed:    7
data:
  train_subset: 2000
  image_size: 64
resources:
  device: cpu
priority: 5
owner: bob
name: "tdann-small"
)";

TEST(ExperimentConfigTest, FillsDefaultsAndBuildsJobSpecs) {
  auto spec = ParseExperimentYaml(kFull, Opts());
  ASSERT_OK(spec);
  EXPECT_EQ(spec->name, "tdann-small");
  EXPECT_EQ(spec->owner, "bob");
  EXPECT_EQ(spec->priority, 5);
  EXPECT_EQ(spec->resources.device, "cpu");
  ASSERT_EQ(spec->stages.size(), 4u);

  const StageSpec& pre = spec->stages[0];
  EXPECT_EQ(pre.id, "pretrain");
  EXPECT_EQ(pre.kind, "train");
  EXPECT_EQ(pre.max_attempts, 3);
  const auto& j = pre.job_spec;
  EXPECT_EQ(j["kind"], "train");
  EXPECT_EQ(j["id"], "pretrain");
  EXPECT_EQ(j["seed"], 7);
  EXPECT_EQ(j["epochs"], 2);
  EXPECT_EQ(j["max_steps"], 0);
  EXPECT_EQ(j["batch_size"], 64);
  EXPECT_DOUBLE_EQ(j["optimizer"]["lr"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(j["optimizer"]["momentum"].get<double>(), 0.9);
  EXPECT_EQ(j["optimizer"]["nesterov"], false);
  EXPECT_DOUBLE_EQ(j["optimizer"]["weight_decay"].get<double>(), 1e-4);
  EXPECT_EQ(j["lr_schedule"], "cosine");
  EXPECT_EQ(j["log_every"], 10);
  EXPECT_EQ(j["checkpoint_every"], 100);
  EXPECT_EQ(j["objective"], "simclr");
  EXPECT_DOUBLE_EQ(j["simclr"]["temperature"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(j["spatial_weight"].get<double>(), 0.0);
  EXPECT_EQ(j["spatial"]["loss"], "rel");
  EXPECT_EQ(j["spatial"]["rel_form"], "half");
  EXPECT_EQ(j["spatial"]["neighborhoods_per_step"], 1);
  EXPECT_EQ(j["spatial"]["layers"], Json::array());
  EXPECT_EQ(j["positions_from"], "");
  EXPECT_EQ(j["model"]["family"], "resnet18");
  EXPECT_EQ(j["model"]["num_classes"], 0);
  EXPECT_EQ(j["model"]["projection_dim"], 128);
  EXPECT_EQ(j["data"]["dataset"], "fashion_mnist");
  EXPECT_EQ(j["data"]["path"], "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(j["data"]["image_size"], 64);
  EXPECT_EQ(j["data"]["train_subset"], 2000);
  EXPECT_EQ(j["data"]["test_subset"], 0);
  EXPECT_EQ(j["resources"]["device"], "cpu");
  EXPECT_EQ(j["resources"]["gpus"], 0);

  const auto& swap = spec->stages[1].job_spec;
  EXPECT_EQ(swap["swapopt"]["neighborhoods"], 1000);
  EXPECT_EQ(swap["swapopt"]["swaps_per_neighborhood"], 500);
  EXPECT_DOUBLE_EQ(swap["swapopt"]["width_mm"].get<double>(), 0.0);
  EXPECT_EQ(swap["swapopt"]["max_units"], 500);
  EXPECT_EQ(swap["swapopt"]["seed"], 7) << "swapopt.seed defaults to the job's seed";
  EXPECT_EQ(spec->stages[1].needs, std::vector<std::string>{"pretrain"});

  // Stage overrides deep-merge over the experiment's blocks.
  const StageSpec& t2 = spec->stages[2];
  EXPECT_EQ(t2.resources.device, "cuda");
  EXPECT_EQ(t2.resources.gpus, 1) << "cuda with gpus 0 means one GPU";
  EXPECT_DOUBLE_EQ(t2.resources.gpu_memory_gb, 16.0);
  EXPECT_EQ(t2.job_spec["model"]["num_classes"], 10);
  EXPECT_EQ(t2.job_spec["model"]["projection_dim"], 128);
  EXPECT_EQ(t2.job_spec["data"]["image_size"], 32);
  EXPECT_EQ(t2.job_spec["data"]["train_subset"], 2000) << "merged, not replaced";
  EXPECT_TRUE(t2.job_spec["optimizer"]["lr"].is_number_float());
  EXPECT_EQ(t2.job_spec["positions_from"], "swap");

  const auto& ex = spec->stages[3].job_spec;
  EXPECT_EQ(ex["stimuli"], Json::array({"sine_gratings", "categories"}));
  EXPECT_EQ(ex["float16"], true);

  EXPECT_EQ(spec->normalized["stages"].size(), 4u);
  EXPECT_EQ(spec->normalized["stages"][2], t2.job_spec);
  EXPECT_EQ(spec->normalized_json, spec->normalized.dump());
  EXPECT_EQ(spec->hash, Sha256Hex(spec->normalized_json));
  EXPECT_TRUE(IsSha256Hex(spec->hash));
}

TEST(ExperimentConfigTest, HashStableUnderReorderingCommentsAndWhitespace) {
  auto a = ParseExperimentYaml(kFull, Opts());
  auto b = ParseExperimentYaml(kFullReordered, Opts());
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->normalized_json, b->normalized_json);
  EXPECT_EQ(a->hash, b->hash);
}

TEST(ExperimentConfigTest, HashChangesWithAnySetting) {
  auto a = ParseExperimentYaml(kFull, Opts());
  std::string changed = kFull;
  changed.replace(changed.find("epochs: 2"), 9, "epochs: 3");
  auto b = ParseExperimentYaml(changed, Opts());
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(a->hash, b->hash);
}

TEST(ExperimentConfigTest, NormalizedDocumentParsesToItself) {
  auto a = ParseExperimentYaml(kFull, Opts());
  ASSERT_OK(a);
  auto b = ParseExperimentYaml(a->normalized_json, Opts());  // JSON is YAML
  ASSERT_OK(b);
  EXPECT_EQ(a->normalized_json, b->normalized_json);
}

TEST(ExperimentConfigTest, WritingADefaultExplicitlyGivesTheSameHash) {
  auto a = ParseExperimentYaml("name: e\nstages: [{id: s, kind: sleep}]\n", Opts());
  auto b = ParseExperimentYaml(
      "name: e\npriority: 0\nseed: 0\nresources: {device: cpu, gpus: 0}\n"
      "stages: [{id: s, kind: sleep, seconds: 1, fail: false, max_attempts: 3, needs: []}]\n",
      Opts());
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->hash, b->hash);
}

TEST(ExperimentConfigTest, OwnerDefaultsToTheSubmitter) {
  auto a = ParseExperimentYaml("name: e\nstages: [{id: s, kind: sleep}]\n", Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->owner, "alice");
  EXPECT_EQ(a->normalized["owner"], "alice");
  ParseOptions none;
  auto b = ParseExperimentYaml("name: e\nstages: [{id: s, kind: sleep}]\n", none);
  ASSERT_OK(b);
  EXPECT_EQ(b->owner, "anonymous");
}

TEST(ExperimentConfigTest, EmptyMappingValueMeansAllDefaults) {
  auto a = ParseExperimentYaml("name: e\nmodel:\nstages:\n  - id: t\n    kind: train\n    optimizer:\n", Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->stages[0].job_spec["model"]["family"], "resnet18");
  EXPECT_DOUBLE_EQ(a->stages[0].job_spec["optimizer"]["lr"].get<double>(), 0.1);
}

TEST(ExperimentConfigTest, ChangingFamilyInAStageReplacesTheModelBlock) {
  auto a = ParseExperimentYaml(
      "name: e\nmodel: {family: resnet18, projection_dim: 64}\n"
      "stages:\n  - {id: t, kind: train}\n  - {id: u, kind: train, model: {family: alltnn}}\n",
      Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->stages[0].job_spec["model"]["projection_dim"], 64);
  EXPECT_EQ(a->stages[1].job_spec["model"]["family"], "alltnn");
  EXPECT_FALSE(a->stages[1].job_spec["model"].contains("projection_dim")) << "resnet18 keys are not carried over";
}

TEST(ExperimentConfigTest, CpuStageOverrideDropsGpus) {
  auto a = ParseExperimentYaml(
      "name: e\nresources: {device: cuda, gpus: 2}\n"
      "stages:\n  - {id: t, kind: sleep}\n  - {id: u, kind: sleep, resources: {device: cpu}}\n",
      Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->resources.gpus, 2);
  EXPECT_EQ(a->stages[0].resources.gpus, 2);
  EXPECT_EQ(a->stages[1].resources.device, "cpu");
  EXPECT_EQ(a->stages[1].resources.gpus, 0);
}

TEST(ExperimentConfigTest, StageSeedOverridesExperimentSeed) {
  auto a = ParseExperimentYaml("name: e\nseed: 3\nstages:\n  - {id: t, kind: sleep}\n  - {id: u, kind: sleep, seed: 9}\n",
                               Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->stages[0].job_spec["seed"], 3);
  EXPECT_EQ(a->stages[1].job_spec["seed"], 9);
}

TEST(ExperimentConfigTest, IntegralFloatAcceptedForInt) {
  auto a = ParseExperimentYaml("name: e\nstages: [{id: t, kind: train, batch_size: 3.2e1}]\n", Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->stages[0].job_spec["batch_size"], 32);
  EXPECT_TRUE(a->stages[0].job_spec["batch_size"].is_number_integer());
}

TEST(ExperimentConfigTest, QuotedNumberIsAString) {
  auto a = ParseExperimentYaml("name: \"123\"\nstages: [{id: \"7\", kind: sleep}]\n", Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->name, "123");
  EXPECT_EQ(a->stages[0].id, "7");
  auto b = ParseExperimentYaml("name: e\nstages: [{id: t, kind: train, epochs: \"3\"}]\n", Opts());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(std::string(b.status().message()).rfind("stages[0].epochs: must be a positive integer", 0), 0u);
}

TEST(ExperimentConfigTest, DiamondDagIsNotACycle) {
  auto a = ParseExperimentYaml(
      "name: e\nstages:\n  - {id: a, kind: sleep}\n  - {id: b, kind: sleep, needs: [a]}\n"
      "  - {id: c, kind: sleep, needs: [a]}\n  - {id: d, kind: sleep, needs: [b, c]}\n",
      Opts());
  ASSERT_OK(a);
  EXPECT_EQ(a->stages[3].needs, (std::vector<std::string>{"b", "c"}));
}

TEST(ExperimentConfigTest, ForwardNeedsAreAllowed) {
  auto a = ParseExperimentYaml("name: e\nstages:\n  - {id: b, kind: sleep, needs: [a]}\n  - {id: a, kind: sleep}\n",
                               Opts());
  ASSERT_OK(a);
}

// ------------------------------------------------------------ check_paths

class CheckPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/topolab_cfg_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/r.npy") << "x";
  }
  void TearDown() override {
    std::remove((dir_ + "/r.npy").c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(CheckPathsTest, MissingImageFolderRejectedOnlyWhenChecking) {
  const std::string y = "name: e\ndata: {dataset: image_folder, path: " + dir_ +
                        "/nope}\nstages: [{id: t, kind: train}]\n";
  EXPECT_OK(ParseExperimentYaml(y, Opts(false)));
  auto s = ParseExperimentYaml(y, Opts(true));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()).rfind("data.path: cannot read \"" + dir_ + "/nope\"", 0), 0u)
      << s.status();
}

TEST_F(CheckPathsTest, ExistingFolderAccepted) {
  const std::string y = "name: e\ndata: {dataset: image_folder, path: " + dir_ + "}\nstages: [{id: t, kind: train}]\n";
  EXPECT_OK(ParseExperimentYaml(y, Opts(true)));
}

TEST_F(CheckPathsTest, FileWhereFolderExpected) {
  const std::string y = "name: e\ndata: {dataset: image_folder, path: " + dir_ +
                        "/r.npy}\nstages: [{id: t, kind: train}]\n";
  auto s = ParseExperimentYaml(y, Opts(true));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()).rfind("data.path: \"" + dir_ + "/r.npy\" is not a directory", 0), 0u);
}

TEST_F(CheckPathsTest, DataPathNotCheckedForKindsThatDoNotReadData) {
  const std::string y = "name: e\ndata: {dataset: image_folder, path: /nonexistent}\nstages: [{id: s, kind: sleep}]\n";
  EXPECT_OK(ParseExperimentYaml(y, Opts(true)));
}

TEST_F(CheckPathsTest, StandaloneSwapoptInputs) {
  const std::string ok = "kind: swapopt\ninputs: {responses: " + dir_ + "/r.npy, positions: " + dir_ + "/r.npy}\n";
  EXPECT_OK(ParseJobSpec(ok, Opts(true)));
  const std::string bad = "kind: swapopt\ninputs: {responses: " + dir_ + "/missing.npy}\n";
  auto s = ParseJobSpec(bad, Opts(true));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()).rfind("inputs.responses: cannot read", 0), 0u) << s.status();
}

// ------------------------------------------------------------ ParseJobSpec

TEST(JobSpecTest, StandaloneSwapoptDefaults) {
  auto j = ParseJobSpec(
      "kind: swapopt\ninputs: {responses: R.npy, positions: P.npy}\n"
      "swapopt: {neighborhoods: 10, swaps_per_neighborhood: 5, width_mm: 1.5, max_units: 50, seed: 4}\n",
      Opts());
  ASSERT_OK(j);
  EXPECT_EQ((*j)["kind"], "swapopt");
  EXPECT_EQ((*j)["id"], "swapopt");
  EXPECT_EQ((*j)["seed"], 0);
  EXPECT_EQ((*j)["inputs"]["responses"], "R.npy");
  EXPECT_EQ((*j)["swapopt"]["neighborhoods"], 10);
  EXPECT_EQ((*j)["swapopt"]["seed"], 4);
  EXPECT_DOUBLE_EQ((*j)["swapopt"]["width_mm"].get<double>(), 1.5);
  EXPECT_EQ((*j)["model"]["family"], "resnet18");
  EXPECT_EQ((*j)["resources"]["device"], "cpu");
}

TEST(JobSpecTest, StandaloneAnalyzeWithCategoryStimuli) {
  auto j = ParseJobSpec(R"({"kind": "analyze", "inputs": {"activations": "A.npy", "positions": "P.npy",
      "stimuli": {"labels": "L.npy", "categories": ["faces", "cars"], "domains": {"f": ["faces"]}}}})",
                        Opts());
  ASSERT_OK(j);
  EXPECT_EQ((*j)["inputs"]["stimuli"]["categories"], Json::array({"faces", "cars"}));
  EXPECT_EQ((*j)["inputs"]["stimuli"]["domains"]["f"], Json::array({"faces"}));
  auto g = ParseJobSpec("kind: analyze\ninputs: {activations: A.npy, positions: P.npy}\n", Opts());
  ASSERT_OK(g);
  EXPECT_EQ((*g)["inputs"]["stimuli"], "sine_gratings");
}

TEST(JobSpecTest, ErrorsUseBarePaths) {
  auto j = ParseJobSpec("kind: train\nepochs: 0\n", Opts());
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(std::string(j.status().message()).rfind("epochs: must be a positive integer", 0), 0u) << j.status();
  auto k = ParseJobSpec("epochs: 1\n", Opts());
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(std::string(k.status().message()).rfind("kind: missing required key", 0), 0u);
  auto u = ParseJobSpec("kind: sleep\nsecs: 1\n", Opts());
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(std::string(u.status().message()).rfind("secs: unknown key", 0), 0u);
}

TEST(JobSpecTest, AJobSpecFromAnExperimentParsesToItself) {
  auto e = ParseExperimentYaml(kFull, Opts());
  ASSERT_OK(e);
  for (const auto& st : e->stages) {
    auto j = ParseJobSpec(st.job_spec.dump(), Opts());
    ASSERT_OK(j);
    EXPECT_EQ(*j, st.job_spec) << st.id;
  }
}

TEST(JobSpecTest, KnownKinds) {
  EXPECT_EQ(KnownJobKinds(), (std::vector<std::string>{"train", "swapopt", "extract", "analyze", "sleep"}));
}

TEST(ExperimentConfigTest, AdamOptimizerNormalisedWithItsOwnKeys) {
  auto a = ParseExperimentYaml(Doc("  - {id: a, kind: train, optimizer: {name: adam, eps: 1.0e-7, "
                                   "clip_grad_norm: 500}}\n  - {id: b, kind: train}\n"
                                   "  - {id: c, kind: train, optimizer: {name: adamw, betas: [0.5, 0.75]}}\n"),
                               Opts());
  ASSERT_OK(a);
  const Json& adam = a->stages[0].job_spec["optimizer"];
  EXPECT_EQ(adam["name"], "adam");
  EXPECT_EQ(adam["betas"], Json::array({0.9, 0.999}));
  EXPECT_DOUBLE_EQ(adam["eps"].get<double>(), 1e-7);
  EXPECT_DOUBLE_EQ(adam["clip_grad_norm"].get<double>(), 500.0);
  EXPECT_FALSE(adam.contains("momentum"));
  EXPECT_FALSE(adam.contains("nesterov"));
  const Json& sgd = a->stages[1].job_spec["optimizer"];
  EXPECT_EQ(sgd["name"], "sgd");
  EXPECT_DOUBLE_EQ(sgd["momentum"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(sgd["clip_grad_norm"].get<double>(), 0.0);
  EXPECT_FALSE(sgd.contains("betas"));
  EXPECT_FALSE(sgd.contains("eps"));
  EXPECT_EQ(a->stages[1].job_spec["lr_milestones"], Json::array());
  EXPECT_DOUBLE_EQ(a->stages[1].job_spec["lr_gamma"].get<double>(), 0.1);
  EXPECT_EQ(a->stages[2].job_spec["optimizer"]["betas"], Json::array({0.5, 0.75}));
}

TEST(ExperimentConfigTest, MultistepMilestonesAcceptIntegersAndFractions) {
  auto a = ParseExperimentYaml(
      Doc("  - {id: a, kind: train, lr_schedule: multistep, lr_milestones: [0.5, 60, 80], lr_gamma: 0.2}\n"), Opts());
  ASSERT_OK(a);
  const Json& j = a->stages[0].job_spec;
  EXPECT_EQ(j["lr_schedule"], "multistep");
  ASSERT_EQ(j["lr_milestones"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["lr_milestones"][0].get<double>(), 0.5);
  EXPECT_TRUE(j["lr_milestones"][1].is_number_float()) << "numbers are stored as double";
  EXPECT_DOUBLE_EQ(j["lr_milestones"][2].get<double>(), 80.0);
}

TEST(ExperimentConfigTest, AlltnnLayersAndV1BlocksAccepted) {
  auto a = ParseExperimentYaml(
      Doc("  - {id: t, kind: train}\n  - {id: u, kind: train, model: {family: v1resnet, blocks: [3.0, 1, 2, 1]}}\n",
          "model:\n  family: alltnn\n  image_size: 32\n  layers:\n    - {kernel: 5, stride: 2, channels: 16, pool: true}\n"
          "    - {kernel: 3, channels: 25}\n  layer_factors: [1, 0.5]\n"),
      Opts());
  ASSERT_OK(a);
  const Json& m = a->stages[0].job_spec["model"];
  ASSERT_EQ(m["layers"].size(), 2u);
  EXPECT_EQ(m["layers"][0], (Json{{"kernel", 5}, {"stride", 2}, {"channels", 16}, {"pool", true}}));
  // Each layer's missing keys get the worker's defaults.
  EXPECT_EQ(m["layers"][1], (Json{{"kernel", 3}, {"stride", 1}, {"channels", 25}, {"pool", false}}));
  EXPECT_EQ(m["layer_factors"], Json::array({1.0, 0.5}));
  EXPECT_EQ(a->stages[1].job_spec["model"]["blocks"], Json::array({3, 1, 2, 1}));
  EXPECT_TRUE(a->stages[1].job_spec["model"]["blocks"][0].is_number_integer());
  // Without the keys the preset decides: nothing is filled in.
  auto b = ParseExperimentYaml(Doc("  - {id: t, kind: train}\n", "model: {family: alltnn, preset: mini}\n"), Opts());
  ASSERT_OK(b);
  EXPECT_FALSE(b->stages[0].job_spec["model"].contains("layers"));
  EXPECT_FALSE(b->stages[0].job_spec["model"].contains("layer_factors"));
  // layer_factors matching the preset's layer count.
  EXPECT_OK(ParseExperimentYaml(
      Doc("  - {id: t, kind: train}\n", "model: {family: alltnn, layer_factors: [1, 1, 1, 1, 1, 2]}\n"), Opts()));
}

TEST(SchemaTest, ListFieldsValidateDirectly) {
  Field f = IntList("sizes", 1, 10).Length(2, 3).Increasing();
  Json out;
  ASSERT_OK(ValidateValue(f, RawJson::array({1, 4.0}), "x", ValidateContext{}, &out));
  EXPECT_EQ(out, Json::array({1, 4}));
  EXPECT_EQ(ValidateValue(f, RawJson::array({4, 4}), "x", ValidateContext{}, &out).message(),
            "x[1]: must be greater than the item before it (4), got 4");
  EXPECT_EQ(ValidateValue(f, RawJson::array({1, 2, 3, 4}), "x", ValidateContext{}, &out).message(),
            "x: must have 2 to 3 items, got 4");
  EXPECT_EQ(ValidateValue(f, RawJson("a"), "x", ValidateContext{}, &out).message(),
            "x: must be a list of 2 to 3 integers, got \"a\"");
  Field g = NumberList("w", 0, 1).Length(1, 4096);
  EXPECT_EQ(ValidateValue(g, RawJson::array(), "w", ValidateContext{}, &out).message(), "w: must not be empty");
  EXPECT_EQ(ValidateValue(g, RawJson::array({0.5, 2}), "w", ValidateContext{}, &out).message(),
            "w[1]: must be a number in [0, 1], got 2");
}

TEST(SchemaTest, DescribeListsTheirElements) {
  const std::string d = DescribeFields(TrainSchema().fields, 0);
  EXPECT_NE(d.find("betas: list of 2 numbers, default [0.9,0.999] (each a number in [0, 1))"), std::string::npos) << d;
  EXPECT_NE(d.find("when name = adamw:"), std::string::npos) << d;
  EXPECT_NE(d.find("lr_milestones: list of at most 1000 numbers, default [] (each a number in [0, 1000000], "
                   "increasing)"),
            std::string::npos)
      << d;
  const std::string m = DescribeFields({ModelSchema()}, 0);
  EXPECT_NE(m.find("layers: list of 1 to 64 mappings"), std::string::npos) << m;
  EXPECT_NE(m.find("\n      kernel: int, default 3 (a positive integer (at most 64))"), std::string::npos) << m;
  EXPECT_NE(m.find("blocks: list of 4 integers (each a positive integer (at most 64))"), std::string::npos) << m;
}

TEST(SchemaTest, DescribeMentionsDefaultsAndDocs) {
  const std::string d = DescribeFields(TrainSchema().fields, 0);
  EXPECT_NE(d.find("batch_size: int, default 64 (a positive integer (at most 65536))"), std::string::npos) << d;
  EXPECT_NE(d.find("  lr: number, default 0.1"), std::string::npos) << d;
}

}  // namespace
}  // namespace topolab::config
