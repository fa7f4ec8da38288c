// Checkpoints: one file holding a model's parameters and buffers, optionally
// an optimizer's state, the training step and a JSON metadata object, so any
// job (train resuming, swapopt, extract) can reload what `train` produced.
//
// Format: a LibTorch serialize archive (torch::serialize::OutputArchive, a
// zip file readable with torch.jit.load in Python) with the keys
//   model/...       the module's parameters and buffers under their dotted
//                   names (torchvision names for ResNet-18: "layer1.0.conv1.weight")
//   optimizer/...   the optimizer's state (only if one was saved)
//   step            int64
//   meta            JSON text (train writes: model spec, data spec, seed,
//                   epoch, class names, rng state, ...)
//   has_optimizer   bool
// Files are written to "<path>.tmp" and renamed, so a reader never sees a
// half-written checkpoint.
#ifndef TOPOLAB_WORKER_SCIENCE_MODELS_CHECKPOINT_H_
#define TOPOLAB_WORKER_SCIENCE_MODELS_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace topolab::science {

struct CheckpointInfo {
  int64_t step = 0;
  nlohmann::json meta = nlohmann::json::object();
  bool has_optimizer = false;
};

// Writes `model` (+ `optimizer` when not null) + step + meta to `path`
// atomically (tmp file + rename). Parent folders are created. Returns
// Internal naming the path if writing fails.
absl::Status SaveCheckpoint(const std::string& path, const torch::nn::Module& model,
                            const torch::optim::Optimizer* optimizer, int64_t step,
                            const nlohmann::json& meta);

// Loads into an already constructed `model` of the same architecture (and
// `optimizer`, when not null, built over that model's parameters).
// Tensors are moved to `device` ("cpu", "cuda:0"). Returns NotFound if the
// file does not exist, DataLoss if it is not a readable checkpoint or a
// parameter is missing or has another shape (the message names the key),
// FailedPrecondition if an optimizer is requested but the file has none.
absl::StatusOr<CheckpointInfo> LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                                              torch::optim::Optimizer* optimizer,
                                              const std::string& device = "cpu");

// Reads only step + meta (cheap; does not touch tensors).
absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path);

// The checkpoint a later stage (extract, swapopt) loads from a train stage's
// `checkpoints/` folder: `final.pt` when present, else the `step_N.pt` with
// the largest N. Returns NotFound naming the folder when there is neither.
absl::StatusOr<std::string> FindStageCheckpoint(const std::string& checkpoints_dir);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_MODELS_CHECKPOINT_H_
