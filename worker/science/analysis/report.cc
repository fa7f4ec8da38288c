// Runs the §7 analyses with one option set and writes arrays, maps and
// metrics (report.h).
#include "worker/science/analysis/report.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "absl/status/status.h"
#include "worker/science/io/npy.h"
#include "worker/science/viz/viz.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

Json Num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::vector<double> ToVector(const at::Tensor& t) {
  at::Tensor d = t.to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

Json VectorJson(const at::Tensor& t) {
  Json a = Json::array();
  for (double v : ToVector(t)) a.push_back(Num(v));
  return a;
}

// Mean over repetitions ignoring NaN, per bin.
at::Tensor NanMeanRows(const at::Tensor& curves) { return at::nanmean(curves, 0); }

// Reads an optional number/bool/string, type-checked.
template <typename T>
absl::Status Read(const Json& obj, const std::string& path, const char* key, T* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const Json& v = obj[key];
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return absl::InvalidArgumentError(path + "." + key + ": must be a boolean");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return absl::InvalidArgumentError(path + "." + key + ": must be a string");
  } else {
    if (!v.is_number()) return absl::InvalidArgumentError(path + "." + key + ": must be a number");
  }
  *out = v.get<T>();
  return absl::OkStatus();
}

absl::Status CheckPositive(double v, const std::string& what) {
  if (!(v > 0)) return absl::InvalidArgumentError(what + ": must be > 0");
  return absl::OkStatus();
}

std::string SafeName(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
  return o;
}

}  // namespace

AnalysisOptions::AnalysisOptions() {
  opm_smoothness.period = 180;
  category_smoothness.max_distance_mm = 60;
  category_smoothness.repetitions = 25;
  category_smoothness.sample_size = 500;
  category_smoothness.period = 0;
}

#define TOPOLAB_READ(obj, path, key, out)                                   \
  if (absl::Status s_ = Read(obj, path, key, out); !s_.ok()) return s_

absl::StatusOr<AnalysisOptions> ParseAnalysisOptions(const Json& a) {
  AnalysisOptions o;
  if (a.is_null()) return o;
  if (!a.is_object()) return absl::InvalidArgumentError("analysis: must be an object");
  const std::string p = "analysis";
  TOPOLAB_READ(a, p, "preferred", &o.preferred);
  if (o.preferred != "von_mises" && o.preferred != "argmax") {
    return absl::InvalidArgumentError("analysis.preferred: must be von_mises or argmax");
  }
  std::string loop = "closed";
  TOPOLAB_READ(a, p, "winding_loop", &loop);
  if (loop != "closed" && loop != "open") {
    return absl::InvalidArgumentError("analysis.winding_loop: must be closed or open");
  }
  o.pinwheels.closed_loop = loop == "closed";
  TOPOLAB_READ(a, p, "position_scale", &o.position_scale);
  if (absl::Status s = CheckPositive(o.position_scale, "analysis.position_scale"); !s.ok()) return s;
  int64_t seed = static_cast<int64_t>(o.seed);
  TOPOLAB_READ(a, p, "seed", &seed);
  o.seed = static_cast<uint64_t>(seed);
  TOPOLAB_READ(a, p, "write_pngs", &o.write_pngs);
  TOPOLAB_READ(a, p, "display_t_threshold", &o.display_t_threshold);
  if (a.contains("selectivity")) {
    const Json& s = a["selectivity"];
    const std::string q = p + ".selectivity";
    TOPOLAB_READ(s, q, "cv_threshold", &o.selectivity.cv_threshold);
    TOPOLAB_READ(s, q, "min_mean", &o.selectivity.min_mean);
    TOPOLAB_READ(s, q, "reference_median_peak", &o.selectivity.reference_median_peak);
    if (absl::Status st = CheckPositive(o.selectivity.reference_median_peak,
                                        q + ".reference_median_peak");
        !st.ok())
      return st;
  }
  auto read_smooth = [&](const char* key, SmoothnessOptions* so) -> absl::Status {
    if (!a.contains(key)) return absl::OkStatus();
    const Json& s = a[key];
    const std::string q = p + "." + key;
    int64_t bins = so->num_bins, reps = so->repetitions;
    TOPOLAB_READ(s, q, "max_distance_mm", &so->max_distance_mm);
    TOPOLAB_READ(s, q, "bins", &bins);
    TOPOLAB_READ(s, q, "repetitions", &reps);
    TOPOLAB_READ(s, q, "sample_size", &so->sample_size);
    if (absl::Status st = CheckPositive(so->max_distance_mm, q + ".max_distance_mm"); !st.ok())
      return st;
    if (bins < 1 || bins > 1000) return absl::InvalidArgumentError(q + ".bins: must be in [1, 1000]");
    if (reps < 1 || reps > 100000)
      return absl::InvalidArgumentError(q + ".repetitions: must be in [1, 100000]");
    if (so->sample_size < 2) return absl::InvalidArgumentError(q + ".sample_size: must be >= 2");
    so->num_bins = static_cast<int>(bins);
    so->repetitions = static_cast<int>(reps);
    return absl::OkStatus();
  };
  if (absl::Status s = read_smooth("opm_smoothness", &o.opm_smoothness); !s.ok()) return s;
  if (a.contains("opm_smoothness")) {
    TOPOLAB_READ(a["opm_smoothness"], p + ".opm_smoothness", "ptp_percentile", &o.ptp_percentile);
  }
  if (absl::Status s = read_smooth("category_smoothness", &o.category_smoothness); !s.ok()) return s;
  if (a.contains("category_smoothness")) {
    TOPOLAB_READ(a["category_smoothness"], p + ".category_smoothness", "min_mean_response",
                 &o.category_min_mean_response);
  }
  if (a.contains("pinwheels")) {
    const Json& s = a["pinwheels"];
    const std::string q = p + ".pinwheels";
    TOPOLAB_READ(s, q, "window_mm", &o.pinwheels.window_mm);
    TOPOLAB_READ(s, q, "stride_mm", &o.pinwheels.stride_mm);
    TOPOLAB_READ(s, q, "winding_threshold", &o.pinwheels.winding_threshold);
    TOPOLAB_READ(s, q, "heterogeneity_threshold", &o.pinwheels.heterogeneity_threshold);
    TOPOLAB_READ(s, q, "min_component_pixels", &o.pinwheels.min_component_pixels);
    TOPOLAB_READ(s, q, "column_spacing_mm", &o.pinwheels.column_spacing_mm);
    for (auto [v, n] : {std::pair{o.pinwheels.window_mm, "window_mm"},
                        std::pair{o.pinwheels.stride_mm, "stride_mm"},
                        std::pair{o.pinwheels.column_spacing_mm, "column_spacing_mm"}}) {
      if (absl::Status st = CheckPositive(v, q + "." + n); !st.ok()) return st;
    }
  }
  if (a.contains("patches")) {
    const Json& s = a["patches"];
    const std::string q = p + ".patches";
    TOPOLAB_READ(s, q, "grid", &o.patches.grid);
    TOPOLAB_READ(s, q, "sigma_mm", &o.patches.sigma_mm);
    TOPOLAB_READ(s, q, "threshold", &o.patches.threshold);
    TOPOLAB_READ(s, q, "member_radius_mm", &o.patches.member_radius_mm);
    TOPOLAB_READ(s, q, "min_member_units", &o.patches.min_member_units);
    TOPOLAB_READ(s, q, "min_area_mm2", &o.patches.min_area_mm2);
    TOPOLAB_READ(s, q, "max_area_mm2", &o.patches.max_area_mm2);
    TOPOLAB_READ(s, q, "min_units", &o.patches.min_units);
    if (o.patches.grid < 2 || o.patches.grid > 2000)
      return absl::InvalidArgumentError(q + ".grid: must be in [2, 2000]");
    if (absl::Status st = CheckPositive(o.patches.sigma_mm, q + ".sigma_mm"); !st.ok()) return st;
  }
  o.opm_smoothness.seed = o.seed;
  o.category_smoothness.seed = o.seed;
  return o;
}

#undef TOPOLAB_READ

Json RunGratingReport(const GratingTuning& tuning, const at::Tensor& positions,
                      const AnalysisOptions& o, const std::string& out_dir) {
  fs::create_directories(out_dir);
  const fs::path dir(out_dir);
  at::Tensor pos = positions.to(at::kCPU).to(at::kDouble) * o.position_scale;
  const int64_t units = tuning.orientation.size(0);
  if (pos.size(0) != units) {
    throw std::invalid_argument("positions have " + std::to_string(pos.size(0)) +
                                " units but the layer has " + std::to_string(units));
  }
  at::Tensor cv = CircularVariance(tuning.orientation);
  at::Tensor pref = o.preferred == "argmax"
                        ? PreferredOrientationArgmax(tuning.orientation)
                        : PreferredOrientationVonMises(tuning.orientation, o.von_mises);
  // Silent units have no preference.
  at::Tensor silent = tuning.orientation.sum(1) <= 0;
  pref = at::where(silent, at::full_like(pref, std::numeric_limits<double>::quiet_NaN()), pref);
  at::Tensor sf_pref = PreferredIndex(tuning.frequency);
  at::Tensor col_pref = PreferredIndex(tuning.colour);
  WriteNpy((dir / "preferred_orientation_deg.npy").string(), pref.to(at::kFloat));
  WriteNpy((dir / "circular_variance.npy").string(), cv.to(at::kFloat));
  WriteNpy((dir / "preferred_sf_index.npy").string(), sf_pref);
  WriteNpy((dir / "preferred_colour_index.npy").string(), col_pref);
  WriteNpy((dir / "orientation_tuning.npy").string(), tuning.orientation.to(at::kFloat));

  SelectivityResult sel = SelectiveFraction(tuning.orientation, cv, o.selectivity);
  at::Tensor eligible = AbovePercentile(PeakToPeak(tuning.orientation), o.ptp_percentile);
  SmoothnessResult opm = DistanceSmoothness(pref, pos, eligible, o.opm_smoothness);
  SmoothnessOptions lin = o.opm_smoothness;
  lin.period = 0;
  at::Tensor sf_eligible = AbovePercentile(PeakToPeak(tuning.frequency), o.ptp_percentile);
  at::Tensor col_eligible = AbovePercentile(PeakToPeak(tuning.colour), o.ptp_percentile);
  SmoothnessResult sfs = DistanceSmoothness(sf_pref.to(at::kDouble), pos, sf_eligible, lin);
  SmoothnessResult cols = DistanceSmoothness(col_pref.to(at::kDouble), pos, col_eligible, lin);
  PinwheelResult pw = FindPinwheels(pref, pos, o.pinwheels);

  Json m;
  m["units"] = units;
  m["preferred_method"] = o.preferred;
  m["selective_fraction"] = sel.selective_fraction;
  m["responsive_units"] = sel.responsive;
  m["selective_units"] = sel.selective;
  m["mean_circular_variance"] = Num(at::nanmean(cv).item<double>());
  m["opm_smoothness"] = Num(opm.score);
  m["opm_smoothness_chance"] = Num(opm.chance_score);
  m["sf_smoothness"] = Num(sfs.score);
  m["colour_smoothness"] = Num(cols.score);
  m["opm_curve"] = {{"distance_mm", VectorJson(opm.midpoints)},
                    {"mean", VectorJson(NanMeanRows(opm.curves))},
                    {"chance", VectorJson(NanMeanRows(opm.chance_curves))}};
  m["pinwheel_count"] = pw.total;
  m["pinwheels_positive"] = pw.positive;
  m["pinwheels_negative"] = pw.negative;
  m["pinwheel_density"] = pw.density;
  m["sheet_extent_mm"] = pw.extent_mm;
  m["winding_loop"] = o.pinwheels.closed_loop ? "closed" : "open";

  if (o.write_pngs) {
    WriteOrientationScatterPng((dir / "orientation_scatter.png").string(), pref, pos,
                               {512, "ORIENTATION PREFERENCE"});
    WriteOrientationMapPng((dir / "orientation_map.png").string(), pw,
                           {512, "SMOOTHED ORIENTATION MAP"});
    std::vector<double> x = ToVector(opm.midpoints);
    std::vector<Series> series = {
        {"MODEL", x, ToVector(NanMeanRows(opm.curves)), {31, 119, 180}, false},
        {"SHUFFLED", x, ToVector(NanMeanRows(opm.chance_curves)), {120, 120, 120}, true}};
    WriteLinePlotPng((dir / "opm_smoothness.png").string(), series, "OPM SMOOTHNESS",
                     "CORTICAL DISTANCE (MM)", "MEAN ABS DIFF PREF ORI (DEG)");
  }
  return m;
}

Json RunCategoryReport(const ConditionAccumulator& acc, const std::vector<std::string>& categories,
                       const DomainMap& domains, const at::Tensor& positions,
                       const AnalysisOptions& o, const std::string& out_dir) {
  fs::create_directories(out_dir);
  const fs::path dir(out_dir);
  at::Tensor pos = positions.to(at::kCPU).to(at::kDouble) * o.position_scale;
  const int64_t units = acc.num_units();
  if (pos.size(0) != units) {
    throw std::invalid_argument("positions have " + std::to_string(pos.size(0)) +
                                " units but the layer has " + std::to_string(units));
  }
  if (static_cast<int64_t>(categories.size()) != acc.num_conditions()) {
    throw std::invalid_argument("category names do not match the accumulator");
  }
  at::Tensor grand = acc.GrandMean();
  at::Tensor responsive = grand > o.category_min_mean_response;
  Json m;
  m["units"] = units;
  Json per_domain = Json::object(), patches = Json::object(), smooth = Json::object();
  double smooth_sum = 0;
  int smooth_n = 0;
  static const Rgb kColours[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                 {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
  std::vector<Series> curves;
  int colour = 0;
  for (const auto& [domain, cats] : domains) {
    std::vector<int64_t> on;
    for (const auto& c : cats) {
      for (size_t k = 0; k < categories.size(); ++k)
        if (categories[k] == c) on.push_back(static_cast<int64_t>(k));
    }
    at::Tensor t = DomainTValues(acc, on);
    const std::string name = SafeName(domain);
    WriteNpy((dir / ("t_" + name + ".npy")).string(), t.to(at::kFloat));
    PatchResult pr = FindPatches(t, pos, o.patches);
    SmoothnessResult sr =
        DistanceSmoothness(t, pos, at::Tensor(), o.category_smoothness, responsive);
    Json areas = Json::array(), sizes = Json::array();
    for (const Patch& p : pr.patches) {
      areas.push_back(p.area_mm2);
      sizes.push_back(static_cast<int64_t>(p.units.size()));
    }
    double frac = (t > o.display_t_threshold).to(at::kDouble).mean().item<double>();
    per_domain[domain] = {{"selective_fraction", frac},
                          {"max_t", Num(t.max().item<double>())},
                          {"patch_count", pr.patches.size()},
                          {"patch_areas_mm2", areas},
                          {"patch_units", sizes},
                          {"rejected_components", pr.rejected.size()},
                          {"smoothness", Num(sr.score)},
                          {"smoothness_chance", Num(sr.chance_score)},
                          {"curve", {{"distance_mm", VectorJson(sr.midpoints)},
                                     {"mean", VectorJson(NanMeanRows(sr.curves))}}}};
    patches[domain] = {{"count", pr.patches.size()}, {"areas_mm2", areas}};
    smooth[domain] = Num(sr.score);
    if (std::isfinite(sr.score)) smooth_sum += sr.score, ++smooth_n;
    if (o.write_pngs) {
      std::string title = domain + " T";
      for (auto& ch : title) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      WriteSelectivityPng((dir / ("selectivity_" + name + ".png")).string(), t, pos, &pr,
                          {512, title}, 0);
      curves.push_back({domain, ToVector(sr.midpoints), ToVector(NanMeanRows(sr.curves)),
                        kColours[colour++ % 8], false});
    }
  }
  smooth["mean"] = smooth_n > 0 ? Json(smooth_sum / smooth_n) : Json(nullptr);
  at::Tensor rsm = ClassRsm(acc.Means());
  WriteNpy((dir / "rsm.npy").string(), rsm.to(at::kFloat));
  m["domains"] = per_domain;
  m["patches"] = patches;
  m["category_smoothness"] = smooth;
  m["rsm_categories"] = categories;
  m["responsive_units"] = responsive.sum().item<int64_t>();
  if (o.write_pngs && !curves.empty()) {
    WriteLinePlotPng((dir / "category_smoothness.png").string(), curves,
                     "CATEGORY SELECTIVITY SMOOTHNESS", "CORTICAL DISTANCE (MM)",
                     "MEAN ABS DIFF T");
  }
  return m;
}

}  // namespace topolab::science
