// Checkpoint save/load on torch::serialize archives.
#include "worker/science/models/checkpoint.h"

#include <filesystem>
#include <regex>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "absl/strings/str_cat.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;

// Module::load() replaces tensors with set_() and checks no shapes, so a
// checkpoint of another architecture would silently reshape the model. This
// walks the module tree, checks every key and shape first and copies values
// into the existing tensors (keeping their identity for the optimizer) only
// when everything matched, so a failed load leaves the model untouched.
using CopyList = std::vector<std::pair<at::Tensor, at::Tensor>>;  // (target, value)
absl::Status CollectModuleChecked(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                                  const std::string& prefix, const std::string& path, CopyList* copies) {
  auto load_tensor = [&](const std::string& key, at::Tensor& target, bool is_buffer) -> absl::Status {
    at::Tensor value;
    if (!archive.try_read(key, value, is_buffer)) {
      return absl::DataLossError(absl::StrCat(path, ": checkpoint has no ", is_buffer ? "buffer " : "parameter ",
                                              "model.", prefix, key));
    }
    if (!target.defined()) return absl::OkStatus();  // e.g. an undefined optional bias
    if (value.sizes() != target.sizes()) {
      std::ostringstream os;
      os << path << ": model." << prefix << key << " has shape " << value.sizes() << " in the checkpoint but "
         << target.sizes() << " in the model";
      return absl::DataLossError(os.str());
    }
    copies->emplace_back(target, value);
    return absl::OkStatus();
  };
  for (auto& p : module.named_parameters(/*recurse=*/false)) {
    absl::Status s = load_tensor(p.key(), p.value(), false);
    if (!s.ok()) return s;
  }
  for (auto& b : module.named_buffers(/*recurse=*/false)) {
    absl::Status s = load_tensor(b.key(), b.value(), true);
    if (!s.ok()) return s;
  }
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      return absl::DataLossError(absl::StrCat(path, ": checkpoint has no module model.", prefix, child.key()));
    }
    absl::Status s =
        CollectModuleChecked(child_archive, *child.value(), prefix + child.key() + ".", path, copies);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointInfo> ReadInfo(torch::serialize::InputArchive& archive, const std::string& path) {
  CheckpointInfo info;
  c10::IValue step, meta, has_optimizer;
  if (!archive.try_read("step", step) || !step.isInt() || !archive.try_read("meta", meta) ||
      !meta.isString()) {
    return absl::DataLossError(absl::StrCat(path, ": not a topolab checkpoint (no step/meta)"));
  }
  info.step = step.toInt();
  info.meta = nlohmann::json::parse(meta.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (info.meta.is_discarded()) return absl::DataLossError(absl::StrCat(path, ": corrupt checkpoint meta JSON"));
  info.has_optimizer = archive.try_read("has_optimizer", has_optimizer) && has_optimizer.isBool() &&
                       has_optimizer.toBool();
  return info;
}

absl::Status OpenArchive(const std::string& path, const std::string& device,
                         torch::serialize::InputArchive* archive) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such checkpoint"));
  try {
    archive->load_from(path, c10::Device(device));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": not a readable checkpoint: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& path, const torch::nn::Module& model,
                            const torch::optim::Optimizer* optimizer, int64_t step,
                            const nlohmann::json& meta) {
  const fs::path target(path);
  const fs::path tmp = target.string() + ".tmp";
  try {
    std::error_code ec;
    if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    archive.write("model", model_archive);
    if (optimizer != nullptr) {
      torch::serialize::OutputArchive optimizer_archive;
      optimizer->save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
    }
    archive.write("has_optimizer", c10::IValue(optimizer != nullptr));
    archive.write("step", c10::IValue(step));
    archive.write("meta", c10::IValue(meta.dump()));
    archive.save_to(tmp.string());
    fs::rename(tmp, target);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("cannot write checkpoint ", path, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointInfo> LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                                              torch::optim::Optimizer* optimizer, const std::string& device) {
  torch::serialize::InputArchive archive;
  absl::Status s = OpenArchive(path, device, &archive);
  if (!s.ok()) return s;
  absl::StatusOr<CheckpointInfo> info = ReadInfo(archive, path);
  if (!info.ok()) return info.status();
  if (optimizer != nullptr && !info->has_optimizer) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": checkpoint holds no optimizer state"));
  }
  try {
    torch::serialize::InputArchive model_archive;
    if (!archive.try_read("model", model_archive)) {
      return absl::DataLossError(absl::StrCat(path, ": checkpoint has no model"));
    }
    CopyList copies;
    s = CollectModuleChecked(model_archive, model, "", path, &copies);
    if (!s.ok()) return s;
    torch::NoGradGuard no_grad;
    for (auto& [target, value] : copies) target.copy_(value);
    if (optimizer != nullptr) {
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer->load(optimizer_archive);
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": cannot load checkpoint: ", e.what()));
  }
  return info;
}

absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path) {
  torch::serialize::InputArchive archive;
  absl::Status s = OpenArchive(path, "cpu", &archive);
  if (!s.ok()) return s;
  return ReadInfo(archive, path);
}

absl::StatusOr<std::string> FindStageCheckpoint(const std::string& checkpoints_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(checkpoints_dir);
  std::error_code ec;
  if (fs::is_regular_file(dir / "final.pt", ec)) return (dir / "final.pt").string();
  static const std::regex kStep(R"(step_(\d+)\.pt)");
  fs::path best;
  int64_t best_step = -1;
  if (fs::is_directory(dir, ec)) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, m, kStep) && std::stoll(m[1].str()) > best_step) {
        best_step = std::stoll(m[1].str());
        best = e.path();
      }
    }
  }
  if (best_step < 0) {
    return absl::NotFoundError("no checkpoints/final.pt or step_*.pt under " + dir.string());
  }
  return best.string();
}

}  // namespace topolab::science
