// The extract job (extract_job.h).
#include "worker/jobs/extract/extract_job.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <ATen/core/grad_mode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/jobs/extract/extra_analysis.h"
#include "worker/science/analysis/report.h"
#include "worker/science/analysis/wiring.h"
#include "worker/science/data/dataset.h"
#include "worker/science/io/npy.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/stimuli/stimuli.h"
#include "worker/science/tdann/sheet.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

// --- Spec --------------------------------------------------------------------

struct ExtractOptions {
  std::string checkpoint_from;
  std::string positions_from;
  std::vector<std::string> stimuli = {"sine_gratings", "categories"};
  std::vector<std::string> layers;
  std::vector<std::string> analyses;  // extra_analysis.h names, run after the stimulus sets
  std::string v1_layer = "layer2.0";
  std::string vtc_layer = "layer4.1";
  bool float16 = false;
  bool save_activations = true;
  int64_t batch_size = 64;
  int64_t stimulus_repeat = 1;  // benchmarks: stream the set this many times
  std::string normalize = "imagenet";
  std::string categories_path;
  int64_t per_category = 100;
  sci::DomainMap domains;  // empty = default for the source
  sci::GratingOptions gratings;
  int64_t image_size = 0;  // 0 = the checkpoint's
  uint64_t sheet_seed = 0;
  bool wiring = true;
  int64_t wiring_images = 50;
  sci::AnalysisOptions analysis;
};

absl::Status Type(const Json& v, bool ok, const std::string& key, const char* what) {
  if (!ok) return absl::InvalidArgumentError(key + ": must be " + what);
  (void)v;
  return absl::OkStatus();
}

absl::StatusOr<ExtractOptions> ParseOptions(const Json& s) {
  ExtractOptions o;
  auto str = [&](const char* k, std::string* out) -> absl::Status {
    if (!s.contains(k) || s[k].is_null()) return absl::OkStatus();
    if (!s[k].is_string()) return absl::InvalidArgumentError(std::string(k) + ": must be a string");
    *out = s[k].get<std::string>();
    return absl::OkStatus();
  };
  auto list = [&](const char* k, std::vector<std::string>* out) -> absl::Status {
    if (!s.contains(k) || s[k].is_null()) return absl::OkStatus();
    if (!s[k].is_array()) return absl::InvalidArgumentError(std::string(k) + ": must be a list");
    out->clear();
    for (const auto& v : s[k]) {
      if (!v.is_string()) return absl::InvalidArgumentError(std::string(k) + ": must list strings");
      out->push_back(v.get<std::string>());
    }
    return absl::OkStatus();
  };
  auto num = [&](const Json& obj, const std::string& path, const char* k, int64_t* out,
                 int64_t lo) -> absl::Status {
    if (!obj.contains(k) || obj[k].is_null()) return absl::OkStatus();
    if (!obj[k].is_number_integer() || obj[k].get<int64_t>() < lo) {
      return absl::InvalidArgumentError(path + k + ": must be an integer >= " + std::to_string(lo));
    }
    *out = obj[k].get<int64_t>();
    return absl::OkStatus();
  };
  for (auto [k, out] : {std::pair{"checkpoint_from", &o.checkpoint_from},
                        std::pair{"positions_from", &o.positions_from},
                        std::pair{"v1_layer", &o.v1_layer}, std::pair{"vtc_layer", &o.vtc_layer},
                        std::pair{"normalize", &o.normalize},
                        std::pair{"categories_path", &o.categories_path}}) {
    if (absl::Status st = str(k, out); !st.ok()) return st;
  }
  if (absl::Status st = list("stimuli", &o.stimuli); !st.ok()) return st;
  if (absl::Status st = list("layers", &o.layers); !st.ok()) return st;
  if (absl::Status st = list("analyses", &o.analyses); !st.ok()) return st;
  for (const auto& v : o.analyses) {
    if (FindExtraAnalysis(v) == nullptr) {
      std::string known;
      for (const ExtraAnalysis& a : ExtraAnalyses()) known += (known.empty() ? "" : ", ") + a.name;
      return absl::InvalidArgumentError("analyses: unknown analysis \"" + v + "\" (known: " + known + ")");
    }
  }
  if (o.stimuli.empty() && o.analyses.empty()) {
    return absl::InvalidArgumentError("stimuli: empty, and no analyses: nothing to extract");
  }
  for (const auto& v : o.stimuli) {
    if (v != "sine_gratings" && v != "categories") {
      return absl::InvalidArgumentError("stimuli: unknown set \"" + v +
                                        "\" (known: sine_gratings, categories)");
    }
  }
  if (o.normalize != "imagenet" && o.normalize != "none") {
    return absl::InvalidArgumentError("normalize: must be imagenet or none");
  }
  if (s.contains("float16") && !s["float16"].is_null()) {
    if (absl::Status st = Type(s["float16"], s["float16"].is_boolean(), "float16", "a boolean"); !st.ok()) return st;
    o.float16 = s["float16"].get<bool>();
  }
  if (s.contains("save_activations") && !s["save_activations"].is_null()) {
    if (absl::Status st = Type(s["save_activations"], s["save_activations"].is_boolean(),
                               "save_activations", "a boolean");
        !st.ok())
      return st;
    o.save_activations = s["save_activations"].get<bool>();
  }
  if (absl::Status st = num(s, "", "batch_size", &o.batch_size, 1); !st.ok()) return st;
  if (absl::Status st = num(s, "", "stimulus_repeat", &o.stimulus_repeat, 1); !st.ok()) return st;
  if (absl::Status st = num(s, "", "image_size", &o.image_size, 0); !st.ok()) return st;
  int64_t seed = 0;
  if (absl::Status st = num(s, "", "sheet_seed", &seed, 0); !st.ok()) return st;
  o.sheet_seed = static_cast<uint64_t>(seed);
  if (s.contains("categories") && s["categories"].is_object()) {
    const Json& c = s["categories"];
    if (absl::Status st = num(c, "categories.", "per_category", &o.per_category, 0); !st.ok()) return st;
    if (c.contains("domains") && c["domains"].is_object()) {
      for (const auto& [d, cats] : c["domains"].items()) {
        if (!cats.is_array()) return absl::InvalidArgumentError("categories.domains." + d + ": must be a list");
        for (const auto& x : cats) {
          if (!x.is_string()) return absl::InvalidArgumentError("categories.domains." + d + ": must list strings");
          o.domains[d].push_back(x.get<std::string>());
        }
      }
    }
  }
  if (s.contains("gratings") && s["gratings"].is_object()) {
    const Json& g = s["gratings"];
    if (g.contains("sf_spacing")) {
      if (!g["sf_spacing"].is_string() ||
          (g["sf_spacing"] != "linear" && g["sf_spacing"] != "log")) {
        return absl::InvalidArgumentError("gratings.sf_spacing: must be linear or log");
      }
      o.gratings.sf_spacing = g["sf_spacing"].get<std::string>();
    }
    if (g.contains("visual_field_deg")) {
      if (!g["visual_field_deg"].is_number() || !(g["visual_field_deg"].get<double>() > 0)) {
        return absl::InvalidArgumentError("gratings.visual_field_deg: must be a number > 0");
      }
      o.gratings.visual_field_deg = g["visual_field_deg"].get<double>();
    }
  }
  if (s.contains("wiring") && s["wiring"].is_object()) {
    const Json& w = s["wiring"];
    if (w.contains("enabled")) {
      if (!w["enabled"].is_boolean()) return absl::InvalidArgumentError("wiring.enabled: must be a boolean");
      o.wiring = w["enabled"].get<bool>();
    }
    if (absl::Status st = num(w, "wiring.", "images", &o.wiring_images, 1); !st.ok()) return st;
  }
  absl::StatusOr<sci::AnalysisOptions> a = sci::ParseAnalysisOptions(s.value("analysis", Json::object()));
  if (!a.ok()) return a.status();
  o.analysis = *a;
  return o;
}

// --- Inputs --------------------------------------------------------------------

absl::StatusOr<fs::path> FindCheckpoint(const JobContext& ctx, const std::string& stage) {
  absl::StatusOr<std::string> found =
      sci::FindStageCheckpoint((ctx.inputs_dir / stage / "checkpoints").string());
  if (!found.ok()) return absl::NotFoundError("checkpoint_from: " + std::string(found.status().message()));
  return fs::path(*found);
}

at::Tensor Preprocess(const at::Tensor& images, const std::string& normalize) {
  if (normalize == "none") return images;
  at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, at::kFloat).view({1, 3, 1, 1});
  at::Tensor std = at::tensor({0.229, 0.224, 0.225}, at::kFloat).view({1, 3, 1, 1});
  return (images - mean.to(images.device())) / std.to(images.device());
}

// Streams a stimulus set `repeat` times (row r shows stimulus r % size).
class RepeatedSet {
 public:
  RepeatedSet(const sci::StimulusSet& set, int64_t repeat) : set_(set), repeat_(repeat) {}
  int64_t size() const { return set_.size() * repeat_; }
  at::Tensor Images(int64_t start, int64_t count) const {
    std::vector<at::Tensor> parts;
    while (count > 0) {
      int64_t s = start % set_.size();
      int64_t n = std::min(count, set_.size() - s);
      parts.push_back(set_.Images(s, n));
      start += n;
      count -= n;
    }
    return parts.size() == 1 ? parts[0] : at::cat(parts);
  }

 private:
  const sci::StimulusSet& set_;
  int64_t repeat_;
};

class ExtractJob : public Job {
 public:
  absl::Status Run(JobContext& ctx) override;

 private:
  absl::StatusOr<at::Tensor> Positions(const JobContext& ctx, const std::string& layer,
                                       const std::vector<int64_t>& shape);
  absl::Status WriteJson(const fs::path& path, const Json& j) {
    std::ofstream f(path);
    f << j.dump(2) << "\n";
    if (!f) return absl::InternalError("cannot write " + path.string());
    return absl::OkStatus();
  }

  ExtractOptions o_;
  std::map<std::string, at::Tensor> positions_;
  std::map<std::string, std::vector<int64_t>> shapes_;  // layer -> [C, H, W] or [U]
  Json layer_info_ = Json::object();
};

absl::StatusOr<at::Tensor> ExtractJob::Positions(const JobContext& ctx, const std::string& layer,
                                                 const std::vector<int64_t>& shape) {
  auto it = positions_.find(layer);
  if (it != positions_.end()) return it->second;
  int64_t units = 1;
  for (int64_t d : shape) units *= d;
  at::Tensor pos;
  if (!o_.positions_from.empty()) {
    const fs::path p = ctx.inputs_dir / o_.positions_from / "positions" / (layer + ".npy");
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      return absl::NotFoundError("positions_from: missing " + p.string());
    }
    try {
      pos = sci::ReadNpy(p.string()).to(at::kDouble);
    } catch (const std::exception& e) {
      return absl::DataLossError(std::string("positions_from: ") + e.what());
    }
    if (pos.dim() != 2 || pos.size(1) != 2 || pos.size(0) != units) {
      return absl::FailedPreconditionError("positions_from: " + p.string() + " is not [" +
                                           std::to_string(units) + ", 2] for layer " + layer);
    }
    layer_info_[layer]["positions"] = "positions_from:" + o_.positions_from;
  } else {
    if (shape.size() != 3 || shape[1] != shape[2]) {
      return absl::FailedPreconditionError("layer " + layer +
                                           " is not a square C x N x N map; give positions_from");
    }
    sci::LayerSheetSpec spec{layer, shape[0], shape[1], sci::SheetScale::kHuman, 0};
    absl::StatusOr<sci::CorticalSheet> sheet = sci::BuildLayerSheet(spec, 0.3, o_.sheet_seed);
    if (!sheet.ok() && absl::IsNotFound(sheet.status())) {
      // Layers outside the TDANN table (other families): 1 mm per location.
      spec.side_mm = static_cast<double>(shape[1]);
      sheet = sci::BuildLayerSheet(spec, 0.3, o_.sheet_seed);
    }
    if (!sheet.ok()) return sheet.status();
    pos = sheet->positions.to(at::kDouble);
    layer_info_[layer]["positions"] = "fresh_sheet";
    layer_info_[layer]["sheet_side_mm"] = sheet->side_mm;
  }
  positions_[layer] = pos;
  return pos;
}

absl::Status ExtractJob::Run(JobContext& ctx) {
  JobReporter& rep = *ctx.reporter;
  absl::StatusOr<ExtractOptions> parsed = ParseOptions(ctx.spec);
  if (!parsed.ok()) return parsed.status();
  o_ = *parsed;
  if (o_.checkpoint_from.empty()) {
    if (ctx.spec.contains("needs") && ctx.spec["needs"].is_array() && !ctx.spec["needs"].empty()) {
      o_.checkpoint_from = ctx.spec["needs"][0].get<std::string>();
    } else {
      // Standalone run-job: the one input stage that holds checkpoints.
      std::error_code ec;
      std::vector<std::string> found;
      if (fs::is_directory(ctx.inputs_dir, ec)) {
        for (const auto& e : fs::directory_iterator(ctx.inputs_dir, ec)) {
          if (fs::is_directory(e.path() / "checkpoints", ec)) found.push_back(e.path().filename().string());
        }
      }
      if (found.size() != 1) {
        return absl::InvalidArgumentError(
            "checkpoint_from: required (no needs, and " + std::to_string(found.size()) +
            " input stages with checkpoints/ under " + ctx.inputs_dir.string() + ")");
      }
      o_.checkpoint_from = found[0];
    }
  }
  absl::StatusOr<fs::path> ckpt = FindCheckpoint(ctx, o_.checkpoint_from);
  if (!ckpt.ok()) return ckpt.status();
  absl::StatusOr<sci::CheckpointInfo> info = sci::ReadCheckpointInfo(ckpt->string());
  if (!info.ok()) return info.status();
  const Json& meta = info->meta;
  Json model_spec = meta.value("model", ctx.spec.value("model", Json::object()));
  const int64_t num_classes = meta.value("num_classes", static_cast<int64_t>(10));
  absl::StatusOr<std::shared_ptr<sci::VisionModel>> model = sci::MakeModel(model_spec, num_classes);
  if (!model.ok()) return model.status();
  absl::StatusOr<sci::CheckpointInfo> loaded = sci::LoadCheckpoint(ckpt->string(), **model, nullptr, ctx.device);
  if (!loaded.ok()) return loaded.status();
  sci::VisionModel& net = **model;
  net.to(at::Device(ctx.device));
  net.eval();
  at::NoGradGuard no_grad;
  Json data_spec = ctx.spec.contains("data") && ctx.spec["data"].is_object() && !ctx.spec["data"].empty()
                       ? ctx.spec["data"]
                       : meta.value("data", Json::object());
  int64_t image_size = o_.image_size;
  if (image_size <= 0) image_size = meta.value("image_size", data_spec.value("image_size", static_cast<int64_t>(32)));
  o_.gratings.image_size = image_size;
  const std::vector<std::string>& names = net.LayerNames();
  auto layer_index = [&](const std::string& l) -> int {
    auto it = std::find(names.begin(), names.end(), l);
    return it == names.end() ? -1 : static_cast<int>(it - names.begin());
  };
  std::vector<std::string> save = o_.layers;
  if (save.empty() && !o_.stimuli.empty()) save = {o_.v1_layer, o_.vtc_layer};
  for (const std::string& l : save) {
    if (layer_index(l) < 0) return absl::InvalidArgumentError("layers: unknown layer \"" + l + "\"");
  }
  for (const std::string& set_name : o_.stimuli) {
    const std::string& l = set_name == "sine_gratings" ? o_.v1_layer : o_.vtc_layer;
    const char* key = set_name == "sine_gratings" ? "v1_layer" : "vtc_layer";
    if (layer_index(l) < 0) {
      return absl::InvalidArgumentError(std::string(key) + ": unknown layer \"" + l + "\" of family " +
                                        net.family());
    }
  }
  rep.Log("extract: checkpoint=" + ckpt->string() + " family=" + net.family() +
          " image_size=" + std::to_string(image_size) + " device=" + ctx.device);

  // One probe image tells every layer's shape.
  {
    at::Tensor probe = at::zeros({1, 3, image_size, image_size}, at::kFloat).to(at::Device(ctx.device));
    sci::ModelOutput out = net.Forward(Preprocess(probe, o_.normalize));
    for (size_t i = 0; i < names.size(); ++i) {
      std::vector<int64_t> shp(out.layers[i].sizes().begin() + 1, out.layers[i].sizes().end());
      shapes_[names[i]] = shp;
      layer_info_[names[i]]["shape"] = shp;
    }
  }

  Json metrics = {{"opm_smoothness", nullptr},   {"pinwheel_count", nullptr},
                  {"pinwheel_density", nullptr}, {"selective_fraction", nullptr},
                  {"patches", nullptr},          {"category_smoothness", nullptr}};
  const double total_sets =
      static_cast<double>(o_.stimuli.size() + o_.analyses.size()) + (o_.wiring ? 1 : 0);
  double sets_done = 0;

  for (const std::string& set_name : o_.stimuli) {
    std::unique_ptr<sci::StimulusSet> set;
    std::unique_ptr<sci::ImageDataset> dataset;  // owns the images of a category set
    sci::DomainMap domains = o_.domains;
    if (set_name == "sine_gratings") {
      set = std::make_unique<sci::GratingSet>(o_.gratings);
    } else {
      Json dspec;
      std::string source;
      if (!o_.categories_path.empty()) {
        dspec = {{"dataset", "image_folder"}, {"path", o_.categories_path}, {"image_size", image_size}};
        source = "image_folder:" + o_.categories_path;
      } else {
        dspec = {{"dataset", "fashion_mnist"}, {"image_size", image_size}};
        if (data_spec.value("dataset", std::string("fashion_mnist")) == "fashion_mnist" &&
            data_spec.contains("path")) {
          dspec["path"] = data_spec["path"];
        }
        source = "fashion_mnist:test";
      }
      absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = sci::OpenDataset(dspec, "test");
      if (!ds.ok()) return absl::Status(ds.status().code(), "categories: " + std::string(ds.status().message()));
      dataset = std::move(*ds);
      const std::vector<std::string>& cats = dataset->class_names();
      if (domains.empty()) {
        domains = o_.categories_path.empty() && cats.size() == 10 ? sci::FashionMnistDomains(cats)
                                                                  : sci::FlocDomains();
      }
      if (std::string err = sci::ValidateDomains(domains, cats); !err.empty()) {
        return absl::InvalidArgumentError("categories." + err);
      }
      // Labels of the whole source, read in batches (labels only are kept).
      std::vector<int64_t> labels(dataset->size());
      for (int64_t s = 0; s < dataset->size(); s += 512) {
        std::vector<int64_t> idx;
        for (int64_t i = s; i < std::min<int64_t>(dataset->size(), s + 512); ++i) idx.push_back(i);
        at::Tensor l = dataset->GetBatch(idx).second.to(at::kLong).contiguous();
        std::copy(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel(), labels.begin() + s);
      }
      std::vector<int64_t> rc, rs;
      sci::SelectRowsPerCategory(labels, static_cast<int64_t>(cats.size()), o_.per_category, &rc, &rs);
      const sci::ImageDataset* dsp = dataset.get();
      set = std::make_unique<sci::CategorySet>(
          cats, rc, rs, domains, image_size,
          [dsp](const std::vector<int64_t>& idx) { return dsp->GetBatch(idx).first; }, source);
    }
    const fs::path set_dir = ctx.out_dir / set_name;
    fs::create_directories(set_dir);
    if (absl::Status s = WriteJson(set_dir / "stimuli.json", set->Describe()); !s.ok()) return s;
    rep.ArtifactReady(set_name + "/stimuli.json");

    // Writers for saved layers, accumulators for the analysis layer.
    std::map<int, std::unique_ptr<sci::NpyStreamWriter>> writers;
    const std::string& alayer = set_name == "sine_gratings" ? o_.v1_layer : o_.vtc_layer;
    const int aidx = layer_index(alayer);
    int64_t aunits = 1;
    for (int64_t d : shapes_[alayer]) aunits *= d;
    if (o_.save_activations) {
      for (const std::string& l : save) {
        int64_t units = 1;
        for (int64_t d : shapes_[l]) units *= d;
        writers[layer_index(l)] = std::make_unique<sci::NpyStreamWriter>(
            (set_dir / (l + ".npy")).string(), o_.float16 ? at::kHalf : at::kFloat,
            std::vector<int64_t>{units});
      }
    }
    std::unique_ptr<sci::GratingAccumulator> gacc;
    std::unique_ptr<sci::ConditionAccumulator> cacc;
    at::Tensor labels;
    if (set_name == "sine_gratings") {
      gacc = std::make_unique<sci::GratingAccumulator>(aunits);
    } else {
      auto* cs = static_cast<sci::CategorySet*>(set.get());
      cacc = std::make_unique<sci::ConditionAccumulator>(
          static_cast<int64_t>(cs->categories().size()), aunits, /*second_moment=*/true);
      labels = cs->Labels();
    }
    RepeatedSet rows(*set, o_.stimulus_repeat);
    const int64_t n = rows.size();
    for (int64_t s = 0; s < n; s += o_.batch_size) {
      if (rep.CancelRequested()) return absl::CancelledError("extract cancelled");
      const int64_t c = std::min(o_.batch_size, n - s);
      at::Tensor imgs = rows.Images(s, c).to(at::Device(ctx.device));
      sci::ModelOutput out = net.Forward(Preprocess(imgs, o_.normalize));
      for (auto& [li, w] : writers) w->Append(out.layers[li].reshape({c, -1}).to(at::kCPU));
      at::Tensor act = out.layers[aidx].reshape({c, -1}).to(at::kCPU);
      at::Tensor idx = at::remainder(at::arange(s, s + c, at::kLong), set->size());
      if (gacc) {
        gacc->Add(act, idx);
      } else {
        cacc->Add(act, labels.index_select(0, idx));
      }
      rep.Progress((sets_done + 0.8 * static_cast<double>(s + c) / n) / total_sets);
    }
    for (auto& [li, w] : writers) {
      w->Close();
      rep.ArtifactReady(set_name + "/" + names[li] + ".npy");
    }
    absl::StatusOr<at::Tensor> pos = Positions(ctx, alayer, shapes_[alayer]);
    if (!pos.ok()) return pos.status();
    if (gacc) {
      Json v1 = sci::RunGratingReport(gacc->Result(), *pos, o_.analysis, ctx.out_dir.string());
      v1["layer"] = alayer;
      for (const char* k : {"opm_smoothness", "pinwheel_count", "pinwheel_density", "selective_fraction"}) {
        metrics[k] = v1[k];
      }
      metrics["v1"] = v1;
    } else {
      auto* cs = static_cast<sci::CategorySet*>(set.get());
      Json cm = sci::RunCategoryReport(*cacc, cs->categories(), cs->domains(), *pos, o_.analysis,
                                       ctx.out_dir.string());
      cm["layer"] = alayer;
      metrics["patches"] = cm["patches"];
      metrics["category_smoothness"] = cm["category_smoothness"];
      metrics["categories"] = cm;
    }
    sets_done += 1;
    rep.Log("extract: " + set_name + " done (" + std::to_string(n) + " stimuli)");
  }

  if (o_.wiring) {
    // §7.7 on natural test images: layer2.0 -> layer2.1 and layer4.0 -> layer4.1.
    Json wiring = Json::object();
    struct Pair { const char* name; const char* src; const char* tgt; double pct, radius, window; };
    const Pair pairs[] = {{"v1", "layer2.0", "layer2.1", 95, 0.9, 3.5},
                          {"vtc", "layer4.0", "layer4.1", 99, 10.0, 0}};
    bool any = false;
    for (const Pair& p : pairs) any = any || (layer_index(p.src) >= 0 && layer_index(p.tgt) >= 0);
    if (any) {
      Json dspec = data_spec;
      dspec["image_size"] = image_size;
      absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = sci::OpenDataset(dspec, "test");
      if (!ds.ok()) return absl::Status(ds.status().code(), "wiring: " + std::string(ds.status().message()));
      const int64_t m = std::min<int64_t>(o_.wiring_images, (*ds)->size());
      std::vector<int64_t> idx(m);
      for (int64_t i = 0; i < m; ++i) idx[i] = i;
      std::map<std::string, std::vector<at::Tensor>> resp;
      for (int64_t s = 0; s < m; s += o_.batch_size) {
        std::vector<int64_t> b(idx.begin() + s, idx.begin() + std::min(m, s + o_.batch_size));
        at::Tensor imgs = (*ds)->GetBatch(b).first.to(at::Device(ctx.device));
        sci::ModelOutput out = net.Forward(Preprocess(imgs, o_.normalize));
        for (const Pair& p : pairs) {
          for (const char* l : {p.src, p.tgt}) {
            int li = layer_index(l);
            if (li >= 0) resp[l].push_back(out.layers[li].reshape({static_cast<int64_t>(b.size()), -1}).to(at::kCPU));
          }
        }
      }
      for (const Pair& p : pairs) {
        if (layer_index(p.src) < 0 || layer_index(p.tgt) < 0) continue;
        absl::StatusOr<at::Tensor> sp = Positions(ctx, p.src, shapes_[p.src]);
        if (!sp.ok()) return sp.status();
        absl::StatusOr<at::Tensor> tp = Positions(ctx, p.tgt, shapes_[p.tgt]);
        if (!tp.ok()) return tp.status();
        sci::WiringOptions wo;
        wo.percentile = p.pct;
        wo.inertia_radius_mm = p.radius;
        wo.window_mm = p.window;
        wo.seed = o_.analysis.seed;
        sci::WiringResult wr = sci::WiringLength(at::cat(resp[p.src]), *sp * o_.analysis.position_scale,
                                                 at::cat(resp[p.tgt]), *tp * o_.analysis.position_scale, wo);
        wiring[p.name] = {{"source", p.src}, {"target", p.tgt}, {"images", m},
                          {"mean_mm", std::isfinite(wr.mean) ? Json(wr.mean) : Json(nullptr)},
                          {"samples", static_cast<int64_t>(wr.samples.size())}};
      }
    }
    metrics["wiring"] = wiring;
    sets_done += 1;
  }
  if (!o_.analyses.empty()) {
    ExtraAnalysisInput in;
    in.ctx = &ctx;
    in.net = &net;
    in.spec = ctx.spec;
    in.data_spec = data_spec;
    in.checkpoint_meta = meta;
    in.image_size = image_size;
    in.batch_size = o_.batch_size;
    const std::string normalize = o_.normalize;
    in.preprocess = [normalize](const at::Tensor& images) { return Preprocess(images, normalize); };
    Json results = Json::object();
    for (const std::string& name : o_.analyses) {
      if (rep.CancelRequested()) return absl::CancelledError("extract cancelled");
      in.progress = [&rep, sets_done, total_sets](double f) {
        rep.Progress((sets_done + std::clamp(f, 0.0, 1.0)) / total_sets);
      };
      rep.Log("extract: analysis " + name);
      absl::StatusOr<Json> r = FindExtraAnalysis(name)->run(in);
      if (!r.ok()) return absl::Status(r.status().code(), name + ": " + std::string(r.status().message()));
      results[name] = *r;
      in.AnnounceDir(name);
      sets_done += 1;
      rep.Progress(sets_done / total_sets);
    }
    metrics["analyses"] = results;
  }
  metrics["layers"] = layer_info_;
  metrics["checkpoint"] = ckpt->string();
  if (absl::Status s = WriteJson(ctx.out_dir / "metrics.json", metrics); !s.ok()) return s;
  std::map<std::string, double> scalars;
  for (const char* k : {"opm_smoothness", "pinwheel_count", "pinwheel_density", "selective_fraction"}) {
    if (metrics[k].is_number()) scalars[k] = metrics[k].get<double>();
  }
  if (metrics["category_smoothness"].is_object() && metrics["category_smoothness"]["mean"].is_number()) {
    scalars["category_smoothness"] = metrics["category_smoothness"]["mean"].get<double>();
  }
  rep.Metrics(0, scalars);
  for (const auto& e : fs::directory_iterator(ctx.out_dir)) {
    if (e.is_regular_file()) rep.ArtifactReady(e.path().filename().string());
  }
  rep.Progress(1.0);
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Job> MakeExtractJob() { return std::make_unique<ExtractJob>(); }

}  // namespace topolab::worker
