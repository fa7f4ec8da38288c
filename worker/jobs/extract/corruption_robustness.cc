// The corruption_robustness extract analysis (corruption_robustness.h).
#include "worker/jobs/extract/corruption_robustness.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "worker/science/data/dataset.h"
#include "worker/science/families/corruptions.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

constexpr char kName[] = "corruption_robustness";
constexpr int kExampleSeverity = 3;
// Test sets up to this size are decoded once and kept in memory; larger
// ones are re-read for every (corruption, severity) cell.
constexpr int64_t kCacheBytes = int64_t{512} << 20;

struct Options {
  int64_t images = 1000;
  std::vector<std::string> corruptions = sci::CorruptionNames();
  std::vector<int> severities = {1, 2, 3, 4, 5};
  uint64_t seed = 0;
  int64_t examples = 6;
};

absl::Status Bad(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(kName, ".", key, ": ", what));
}

absl::StatusOr<int64_t> NonNegativeInt(const Json& v, const std::string& key) {
  if (!v.is_number_integer() || (v.is_number_integer() && v.get<int64_t>() < 0)) {
    return Bad(key, "must be an integer >= 0, got " + v.dump());
  }
  return v.get<int64_t>();
}

absl::StatusOr<Options> ParseOptions(const Json& spec) {
  Options o;
  if (!spec.contains(kName) || spec[kName].is_null()) return o;
  const Json& s = spec[kName];
  if (!s.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(kName, ": must be a mapping, got ", s.dump()));
  }
  static const std::set<std::string> kKeys = {"images", "corruptions", "severities", "seed", "examples"};
  for (const auto& [k, v] : s.items()) {
    if (!kKeys.count(k)) {
      return Bad(k, "unknown key (known: " + absl::StrJoin(kKeys, ", ") + ")");
    }
  }
  for (auto [key, out] : {std::pair{"images", &o.images}, std::pair{"examples", &o.examples}}) {
    if (!s.contains(key) || s[key].is_null()) continue;
    absl::StatusOr<int64_t> v = NonNegativeInt(s[key], key);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  if (s.contains("seed") && !s["seed"].is_null()) {
    absl::StatusOr<int64_t> v = NonNegativeInt(s["seed"], "seed");
    if (!v.ok()) return v.status();
    o.seed = static_cast<uint64_t>(*v);
  }
  if (s.contains("corruptions") && !s["corruptions"].is_null()) {
    const Json& c = s["corruptions"];
    if (!c.is_array()) return Bad("corruptions", "must be a list of corruption names, got " + c.dump());
    if (c.empty()) return Bad("corruptions", "must not be empty");
    const std::vector<std::string>& known = sci::CorruptionNames();
    o.corruptions.clear();
    for (size_t i = 0; i < c.size(); ++i) {
      const std::string key = absl::StrCat("corruptions[", i, "]");
      if (!c[i].is_string()) return Bad(key, "must be a string, got " + c[i].dump());
      const std::string name = c[i].get<std::string>();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return Bad(key, absl::StrCat("unknown corruption \"", name, "\" (known: ", absl::StrJoin(known, ", "), ")"));
      }
      if (std::find(o.corruptions.begin(), o.corruptions.end(), name) != o.corruptions.end()) {
        return Bad(key, absl::StrCat("duplicate \"", name, "\""));
      }
      o.corruptions.push_back(name);
    }
  }
  if (s.contains("severities") && !s["severities"].is_null()) {
    const Json& c = s["severities"];
    if (!c.is_array()) return Bad("severities", "must be a list of integers in 1..5, got " + c.dump());
    if (c.empty()) return Bad("severities", "must not be empty");
    o.severities.clear();
    for (size_t i = 0; i < c.size(); ++i) {
      const std::string key = absl::StrCat("severities[", i, "]");
      if (!c[i].is_number_integer() || c[i].get<int64_t>() < 1 || c[i].get<int64_t>() > 5) {
        return Bad(key, "must be an integer in 1..5, got " + c[i].dump());
      }
      const int v = c[i].get<int>();
      if (std::find(o.severities.begin(), o.severities.end(), v) != o.severities.end()) {
        return Bad(key, absl::StrCat("duplicate ", v));
      }
      o.severities.push_back(v);
    }
    std::sort(o.severities.begin(), o.severities.end());
  }
  return o;
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f) return absl::InternalError("cannot write " + path.string());
  return absl::OkStatus();
}

// GetBatch throws (naming the file) on an undecodable image.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> LoadBatch(const sci::ImageDataset& ds,
                                                             const std::vector<int64_t>& idx) {
  try {
    return ds.GetBatch(idx);
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("data: ") + e.what());
  }
}

}  // namespace

absl::StatusOr<Json> RunCorruptionRobustness(const ExtraAnalysisInput& in) {
  absl::StatusOr<Options> parsed = ParseOptions(in.spec);
  if (!parsed.ok()) return parsed.status();
  const Options& o = *parsed;
  JobReporter& rep = *in.ctx->reporter;
  sci::VisionModel& net = *in.net;
  if (net.num_classes() <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint's model (family ", net.family(),
        ") has no classifier head (num_classes 0); corruption robustness needs its logits"));
  }

  // The test set, at the extract job's image size.
  Json dspec = in.data_spec.is_object() ? in.data_spec : Json::object();
  dspec["image_size"] = in.image_size;
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> opened = sci::OpenDataset(dspec, "test");
  if (!opened.ok()) {
    return absl::Status(opened.status().code(), "data: " + std::string(opened.status().message()));
  }
  const sci::ImageDataset& ds = **opened;
  const std::vector<std::string>& classes = ds.class_names();
  if (static_cast<int64_t>(classes.size()) > net.num_classes()) {
    return absl::FailedPreconditionError(absl::StrCat("the test set has ", classes.size(),
                                                      " classes but the model's head only ",
                                                      net.num_classes()));
  }
  const Json trained_json = in.checkpoint_meta.value("class_names", Json());
  if (trained_json.is_array() &&
      std::all_of(trained_json.begin(), trained_json.end(), [](const Json& v) { return v.is_string(); })) {
    const std::vector<std::string> trained = trained_json.get<std::vector<std::string>>();
    if (trained != classes) {
      return absl::FailedPreconditionError(
          absl::StrCat("the test set's classes [", absl::StrJoin(classes, ", "),
                       "] are not the classes the checkpoint was trained on [", absl::StrJoin(trained, ", "),
                       "], so its labels would be misread; point data: at the matching test set"));
    }
  }

  // A seeded subset, kept in file order.
  const int64_t total = ds.size();
  const int64_t n = o.images == 0 ? total : std::min(o.images, total);
  if (n == 0) return absl::FailedPreconditionError("data: the test split is empty");
  std::vector<int64_t> rows(n);
  if (n == total) {
    for (int64_t i = 0; i < n; ++i) rows[i] = i;
  } else {
    at::Generator gen = at::detail::createCPUGenerator(o.seed);
    at::Tensor perm = std::get<0>(at::randperm(total, gen, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, n).sort());
    perm = perm.contiguous();
    std::copy(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n, rows.begin());
  }
  const int64_t bs = std::max<int64_t>(1, in.batch_size);
  const int64_t side = in.image_size;
  std::vector<std::pair<at::Tensor, at::Tensor>> cache;
  const bool cached = n * 3 * side * side * 4 <= kCacheBytes;
  if (cached) {
    for (int64_t s = 0; s < n; s += bs) {
      std::vector<int64_t> idx(rows.begin() + s, rows.begin() + std::min(n, s + bs));
      absl::StatusOr<std::pair<at::Tensor, at::Tensor>> b = LoadBatch(ds, idx);
      if (!b.ok()) return b.status();
      cache.push_back(*b);
    }
  }
  absl::Status load_error;
  sci::BatchVisitor batches = [&](const std::function<void(const at::Tensor&, const at::Tensor&)>& f) {
    if (cached) {
      for (const auto& [images, labels] : cache) f(images, labels);
      return;
    }
    for (int64_t s = 0; s < n && load_error.ok(); s += bs) {
      std::vector<int64_t> idx(rows.begin() + s, rows.begin() + std::min(n, s + bs));
      absl::StatusOr<std::pair<at::Tensor, at::Tensor>> b = LoadBatch(ds, idx);
      if (!b.ok()) {
        load_error = b.status();
        return;
      }
      f(b->first, b->second);
    }
  };
  at::NoGradGuard no_grad;
  const at::Device device(in.ctx->device);
  auto predict = [&](const at::Tensor& images) {
    return net.Forward(in.preprocess(images.to(device))).logits.to(at::kCPU);
  };

  rep.Log(absl::StrCat(kName, ": ", n, " test images at ", side, " px, ", o.corruptions.size(),
                       " corruptions x ", o.severities.size(), " severities"));
  sci::RobustnessOptions ro;
  ro.corruptions = o.corruptions;
  ro.severities = o.severities;
  ro.seed = o.seed;
  ro.before_corruption = [&](size_t i, const std::string& name) -> absl::Status {
    if (rep.CancelRequested()) return absl::CancelledError("extract cancelled");
    rep.Log(absl::StrCat(kName, ": ", name, " (", i + 1, "/", o.corruptions.size(), ")"));
    if (in.progress) in.progress(static_cast<double>(i) / static_cast<double>(o.corruptions.size()));
    return absl::OkStatus();
  };
  absl::StatusOr<sci::RobustnessResult> result = sci::EvaluateCorruptionRobustness(predict, batches, ro);
  if (!load_error.ok()) return load_error;
  if (!result.ok()) return result.status();
  const sci::RobustnessResult& r = *result;

  const fs::path dir = in.Dir(kName);
  Json full = r.ToJson();
  full["seed"] = o.seed;
  full["image_size"] = side;
  full["test_set"] = {{"dataset", dspec.value("dataset", std::string("fashion_mnist"))},
                      {"size", total},
                      {"classes", classes}};
  if (absl::Status s = WriteText(dir / "robustness.json", full.dump(2) + "\n"); !s.ok()) return s;
  std::string csv = "corruption,severity,accuracy\n";
  for (size_t c = 0; c < r.corruptions.size(); ++c) {
    for (size_t k = 0; k < r.severities.size(); ++k) {
      csv += absl::StrFormat("%s,%d,%.6f\n", r.corruptions[c], r.severities[k], r.accuracy[c][k].item<double>());
    }
  }
  if (absl::Status s = WriteText(dir / "robustness.csv", csv); !s.ok()) return s;
  try {
    sci::WriteRobustnessPng((dir / "robustness.png").string(), r);
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  }

  if (o.examples > 0) {
    // Clean and corrupted copies of the first test images, magnified so a
    // 28-64 px image is about 100 px on screen.
    std::vector<int64_t> idx(rows.begin(), rows.begin() + std::min(n, o.examples));
    absl::StatusOr<std::pair<at::Tensor, at::Tensor>> b = LoadBatch(ds, idx);
    if (!b.ok()) return b.status();
    std::vector<std::pair<std::string, at::Tensor>> grid = {{"clean", b->first}};
    const std::vector<std::string>& all = sci::CorruptionNames();
    for (const std::string& name : o.corruptions) {
      const uint64_t g = o.seed + 1 + 5 * static_cast<uint64_t>(std::find(all.begin(), all.end(), name) - all.begin()) +
                         (kExampleSeverity - 1);
      at::Generator gen = at::detail::createCPUGenerator(g);
      absl::StatusOr<at::Tensor> c = sci::Corrupt(b->first, name, kExampleSeverity, gen);
      if (!c.ok()) return c.status();
      grid.push_back({name, *c});
    }
    const int scale = static_cast<int>(std::clamp<int64_t>((100 + side - 1) / side, 1, 4));
    try {
      sci::WriteImageRowsPng((dir / "examples.png").string(),
                             absl::StrCat("SEVERITY ", kExampleSeverity, " EXAMPLES"), grid, scale);
    } catch (const std::exception& e) {
      return absl::InternalError(e.what());
    }
  }
  rep.Log(absl::StrFormat("%s: clean %.4f mean %.4f relative %s", kName, r.clean_accuracy, r.mean_accuracy,
                          full["relative"].dump()));
  return Json{{"clean_accuracy", r.clean_accuracy},
              {"mean_accuracy", r.mean_accuracy},
              {"relative", full["relative"]},
              {"mean_per_corruption", full["mean_per_corruption"]},
              {"corruptions", r.corruptions},
              {"severities", r.severities},
              {"images", r.images}};
}

}  // namespace topolab::worker
