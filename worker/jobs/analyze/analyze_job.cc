// The analyze job (analyze_job.h).
#include "worker/jobs/analyze/analyze_job.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/status/status.h"
#include "worker/science/analysis/report.h"
#include "worker/science/io/npy.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

absl::StatusOr<fs::path> ResolveInput(const JobContext& ctx, const Json& inputs,
                                      const std::string& key, const std::string& prefix = "inputs.") {
  if (!inputs.contains(key) || !inputs[key].is_string() || inputs[key].get<std::string>().empty()) {
    return absl::InvalidArgumentError(prefix + key + ": must be a non-empty path");
  }
  fs::path p = inputs[key].get<std::string>();
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p;
  if (p.is_relative() && !ctx.inputs_dir.empty() && fs::is_regular_file(ctx.inputs_dir / p, ec)) {
    return ctx.inputs_dir / p;
  }
  return absl::NotFoundError(prefix + key + ": file not found: " + p.string());
}

// Loads a .npy, turning the reader's exception into a Status naming the key.
absl::StatusOr<at::Tensor> LoadNpy(const fs::path& path, const std::string& key) {
  try {
    return sci::ReadNpy(path.string());
  } catch (const std::exception& e) {
    return absl::DataLossError("inputs." + key + ": " + e.what());
  }
}

sci::DomainMap DefaultDomains(const std::vector<std::string>& categories) {
  sci::DomainMap floc = sci::FlocDomains();
  if (sci::ValidateDomains(floc, categories).empty()) return floc;
  if (categories.size() == 10) {
    sci::DomainMap fm = sci::FashionMnistDomains(categories);
    static const std::set<std::string> kFashion = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                   "Coat", "Sandal", "Shirt", "Sneaker",
                                                   "Bag", "Ankle boot"};
    bool all = true;
    for (const auto& c : categories) all = all && kFashion.count(c);
    if (all) return fm;
  }
  sci::DomainMap one_vs_rest;
  for (const auto& c : categories) one_vs_rest[c] = {c};
  return one_vs_rest;
}

class AnalyzeJob : public Job {
 public:
  absl::Status Run(JobContext& ctx) override {
    JobReporter& rep = *ctx.reporter;
    const Json& spec = ctx.spec;
    const Json inputs = spec.value("inputs", Json::object());
    if (!inputs.is_object()) return absl::InvalidArgumentError("inputs: must be an object");
    absl::StatusOr<sci::AnalysisOptions> opts =
        sci::ParseAnalysisOptions(spec.value("analysis", Json::object()));
    if (!opts.ok()) return opts.status();
    int64_t batch = spec.value("batch_size", 256);
    if (batch < 1) return absl::InvalidArgumentError("batch_size: must be >= 1");

    absl::StatusOr<fs::path> a_path = ResolveInput(ctx, inputs, "activations");
    if (!a_path.ok()) return a_path.status();
    absl::StatusOr<fs::path> p_path = ResolveInput(ctx, inputs, "positions");
    if (!p_path.ok()) return p_path.status();
    absl::StatusOr<at::Tensor> acts = LoadNpy(*a_path, "activations");
    if (!acts.ok()) return acts.status();
    absl::StatusOr<at::Tensor> pos = LoadNpy(*p_path, "positions");
    if (!pos.ok()) return pos.status();
    if (acts->dim() < 2 || !at::isFloatingType(acts->scalar_type())) {
      return absl::InvalidArgumentError("inputs.activations: must be a float array images x units");
    }
    at::Tensor a = acts->reshape({acts->size(0), -1});
    const int64_t n = a.size(0), units = a.size(1);
    if (pos->dim() != 2 || pos->size(1) != 2 || pos->size(0) != units) {
      return absl::InvalidArgumentError(
          "inputs.positions: must be units x 2 with " + std::to_string(units) +
          " units (the activations' second dimension)");
    }
    rep.Log("analyze: images=" + std::to_string(n) + " units=" + std::to_string(units));

    Json metrics = {{"opm_smoothness", nullptr},    {"pinwheel_count", nullptr},
                    {"pinwheel_density", nullptr},  {"selective_fraction", nullptr},
                    {"patches", nullptr},           {"category_smoothness", nullptr}};
    const Json stim = inputs.value("stimuli", Json("sine_gratings"));
    if (stim.is_string()) {
      if (stim.get<std::string>() != "sine_gratings") {
        return absl::InvalidArgumentError("inputs.stimuli: must be sine_gratings or an object");
      }
      if (n != sci::kNumGratings) {
        return absl::InvalidArgumentError("inputs.activations: sine_gratings needs 640 rows, got " +
                                          std::to_string(n));
      }
      sci::GratingAccumulator acc(units);
      for (int64_t s = 0; s < n; s += batch) {
        const int64_t c = std::min(batch, n - s);
        acc.AddRange(a.narrow(0, s, c), s);
        rep.Progress(0.5 * (s + c) / n);
        if (rep.CancelRequested()) return absl::CancelledError("analyze cancelled");
      }
      Json v1 = sci::RunGratingReport(acc.Result(), *pos, *opts, ctx.out_dir.string());
      for (const char* k :
           {"opm_smoothness", "pinwheel_count", "pinwheel_density", "selective_fraction"}) {
        metrics[k] = v1[k];
      }
      metrics["v1"] = v1;
    } else if (stim.is_object()) {
      absl::StatusOr<fs::path> l_path = ResolveInput(ctx, stim, "labels", "inputs.stimuli.");
      if (!l_path.ok()) return l_path.status();
      absl::StatusOr<at::Tensor> labels = LoadNpy(*l_path, "stimuli.labels");
      if (!labels.ok()) return labels.status();
      at::Tensor lab = labels->reshape({-1});
      if (at::isFloatingType(lab.scalar_type()) || lab.size(0) != n) {
        return absl::InvalidArgumentError("inputs.stimuli.labels: must be " + std::to_string(n) +
                                          " integers (one per activation row)");
      }
      lab = lab.to(at::kLong);
      if (!stim.contains("categories") || !stim["categories"].is_array() ||
          stim["categories"].empty()) {
        return absl::InvalidArgumentError("inputs.stimuli.categories: must be a non-empty list");
      }
      std::vector<std::string> cats;
      for (const auto& c : stim["categories"]) {
        if (!c.is_string()) return absl::InvalidArgumentError("inputs.stimuli.categories: must be strings");
        cats.push_back(c.get<std::string>());
      }
      const int64_t k = static_cast<int64_t>(cats.size());
      if (lab.min().item<int64_t>() < 0 || lab.max().item<int64_t>() >= k) {
        return absl::InvalidArgumentError("inputs.stimuli.labels: values must be in [0, " +
                                          std::to_string(k) + ")");
      }
      sci::DomainMap domains;
      if (stim.contains("domains") && stim["domains"].is_object() && !stim["domains"].empty()) {
        for (const auto& [d, list] : stim["domains"].items()) {
          if (!list.is_array()) return absl::InvalidArgumentError("inputs.stimuli.domains." + d + ": must be a list");
          for (const auto& c : list) domains[d].push_back(c.get<std::string>());
        }
      } else {
        domains = DefaultDomains(cats);
      }
      if (std::string err = sci::ValidateDomains(domains, cats); !err.empty()) {
        return absl::InvalidArgumentError("inputs.stimuli." + err);
      }
      sci::ConditionAccumulator acc(k, units, /*second_moment=*/true);
      for (int64_t s = 0; s < n; s += batch) {
        const int64_t c = std::min(batch, n - s);
        acc.Add(a.narrow(0, s, c), lab.narrow(0, s, c));
        rep.Progress(0.5 * (s + c) / n);
        if (rep.CancelRequested()) return absl::CancelledError("analyze cancelled");
      }
      Json cm = sci::RunCategoryReport(acc, cats, domains, *pos, *opts, ctx.out_dir.string());
      metrics["patches"] = cm["patches"];
      metrics["category_smoothness"] = cm["category_smoothness"];
      metrics["categories"] = cm;
    } else {
      return absl::InvalidArgumentError("inputs.stimuli: must be sine_gratings or an object");
    }
    {
      std::ofstream f(ctx.out_dir / "metrics.json");
      f << metrics.dump(2) << "\n";
      if (!f) return absl::InternalError("cannot write " + (ctx.out_dir / "metrics.json").string());
    }
    std::map<std::string, double> scalars;
    for (const char* k : {"opm_smoothness", "pinwheel_count", "pinwheel_density", "selective_fraction"}) {
      if (metrics[k].is_number()) scalars[k] = metrics[k].get<double>();
    }
    if (metrics["category_smoothness"].is_object() &&
        metrics["category_smoothness"]["mean"].is_number()) {
      scalars["category_smoothness"] = metrics["category_smoothness"]["mean"].get<double>();
    }
    rep.Metrics(0, scalars);
    for (const auto& e : fs::recursive_directory_iterator(ctx.out_dir)) {
      if (e.is_regular_file()) rep.ArtifactReady(fs::relative(e.path(), ctx.out_dir).generic_string());
    }
    rep.Progress(1.0);
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Job> MakeAnalyzeJob() { return std::make_unique<AnalyzeJob>(); }

}  // namespace topolab::worker
