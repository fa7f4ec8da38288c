// The `alltnn_maps` extract analysis (alltnn_maps.h). Every pass over
// stimuli keeps only per-unit running sums on the sheet (float64, CPU), so
// memory is (conditions x sheet units) whatever the number of images.
#include "worker/jobs/extract/alltnn_maps.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <utility>

#include <ATen/core/grad_mode.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/status_macros.h"
#include "worker/science/analysis/accumulators.h"
#include "worker/science/data/dataset.h"
#include "worker/science/families/alltnn.h"
#include "worker/science/families/alltnn_analysis.h"
#include "worker/science/families/preprocess.h"
#include "worker/science/families/spec_util.h"
#include "worker/science/io/npy.h"
#include "worker/science/io/png.h"
#include "worker/science/stimuli/stimuli.h"
#include "worker/science/viz/viz.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

constexpr char kName[] = "alltnn_maps";

// JSON cannot hold NaN/inf: they become null.
Json Num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json Array(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).cpu().contiguous().flatten();
  Json a = Json::array();
  const double* p = d.data_ptr<double>();
  for (int64_t i = 0; i < d.numel(); ++i) a.push_back(Num(p[i]));
  return a;
}

double NanMean(const at::Tensor& t) { return at::nanmean(t.to(at::kDouble)).item<double>(); }

absl::Status GetStringList(const Json& obj, const std::string& key, std::vector<std::string>* out) {
  if (!obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const Json& v = obj[key];
  if (!v.is_array()) return absl::InvalidArgumentError(absl::StrCat(kName, ".", key, ": must be a list of layer names"));
  out->clear();
  for (const Json& e : v) {
    if (!e.is_string()) return absl::InvalidArgumentError(absl::StrCat(kName, ".", key, ": must list strings"));
    out->push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

// Indices of `names` among the model's layers; `fallback` when empty.
absl::StatusOr<std::vector<int>> ResolveLayers(const std::vector<std::string>& names,
                                               const std::vector<std::string>& all,
                                               const std::string& key, std::vector<int> fallback) {
  if (names.empty()) return fallback;
  std::vector<int> idx;
  for (const std::string& n : names) {
    auto it = std::find(all.begin(), all.end(), n);
    if (it == all.end()) {
      return absl::InvalidArgumentError(absl::StrCat(kName, ".", key, ": unknown layer \"", n,
                                                     "\" (model layers: ", absl::StrJoin(all, ", "), ")"));
    }
    idx.push_back(static_cast<int>(it - all.begin()));
  }
  return idx;
}

// --- Figures -------------------------------------------------------------------
// The sheet pictures come from alltnn_analysis.h's writers; these wrap them
// in a figure with a title above and a colour key below, so a PNG read on its
// own says what it shows and in which units.

constexpr sci::Rgb kBlack = {0, 0, 0};
constexpr int kMargin = 10;
constexpr int kTitleH = 26;

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// Re-reads the sheet PNG at `path` and writes it back inside a figure whose
// key (height `key_h`) is drawn by `key(canvas, x, y, width)`.
void Decorate(const std::string& path, const std::string& title, int key_h,
              const std::function<void(sci::Canvas&, int, int, int)>& key) {
  at::Tensor img = sci::ReadPngRgb(path).contiguous();
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
  const int width = std::max({w, sci::Canvas::TextWidth(title, 2), 300}) + 2 * kMargin;
  sci::Canvas c(width, kTitleH + h + key_h + 2 * kMargin);
  c.Text(kMargin, kMargin, title, kBlack, 2);
  const int x0 = (width - w) / 2, y0 = kMargin + kTitleH;
  const uint8_t* p = img.data_ptr<uint8_t>();
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t* q = p + (static_cast<int64_t>(y) * w + x) * 3;
      c.Set(x0 + x, y0 + y, {q[0], q[1], q[2]});
    }
  }
  c.Rect(x0 - 1, y0 - 1, w + 2, h + 2, kBlack);
  key(c, kMargin, y0 + h + 8, width - 2 * kMargin);
  c.Save(path);
}

// A horizontal colour bar with labels under both ends (and the middle).
void ColourBar(sci::Canvas& c, int x, int y, int w, const std::function<sci::Rgb(double)>& colour,
               const std::string& lo, const std::string& mid, const std::string& hi) {
  const int bar_h = 14;
  for (int i = 0; i < w; ++i) {
    c.FillRect(x + i, y, 1, bar_h, colour(static_cast<double>(i) / std::max(1, w - 1)));
  }
  c.Rect(x, y, w, bar_h, kBlack);
  c.Text(x, y + bar_h + 4, lo, kBlack, 2);
  if (!mid.empty()) c.Text(x + (w - sci::Canvas::TextWidth(mid, 2)) / 2, y + bar_h + 4, mid, kBlack, 2);
  c.Text(x + w - sci::Canvas::TextWidth(hi, 2), y + bar_h + 4, hi, kBlack, 2);
}

void OrientationFigure(const std::string& path, const at::Tensor& preference, const std::string& title,
                       int side) {
  sci::WriteSheetOrientationPng(path, preference, side);
  Decorate(path, title, 40, [](sci::Canvas& c, int x, int y, int w) {
    ColourBar(c, x, y, w, [](double t) { return sci::OrientationColour(180.0 * t); }, "0", "90",
              "180 DEG");
  });
}

// Same colour rules as WriteSheetScalarPng (sequential: min..max of the
// finite values; diverging: +-99th percentile of |x|).
void ScalarFigure(const std::string& path, const at::Tensor& map, const std::string& title,
                  const std::string& colours, int side) {
  sci::WriteSheetScalarPng(path, map, colours, side);
  const std::pair<double, double> range = sci::SheetScalarRange(map, colours);
  const double lo = range.first, hi = range.second;
  const bool diverging = colours == "diverging";
  Decorate(path, title, 40, [&](sci::Canvas& c, int x, int y, int w) {
    ColourBar(
        c, x, y, w,
        [diverging](double t) -> sci::Rgb {
          if (diverging) return sci::DivergingColour(2.0 * t - 1.0);
          const double s = 3.0 * t;
          const auto ch = [](double v) { return static_cast<uint8_t>(std::lround(255 * std::clamp(v, 0.0, 1.0))); };
          return {ch(s), ch(s - 1.0), ch(s - 2.0)};
        },
        Fmt(lo), diverging ? "0" : "", Fmt(hi));
  });
}

// More categories than this get a hue bar instead of a named key.
constexpr int64_t kMaxNamedCategories = 24;

void CategoryFigure(const std::string& path, const at::Tensor& winner, const std::vector<std::string>& names,
                    const std::string& title, int side) {
  const int64_t n = static_cast<int64_t>(names.size());
  sci::WriteSheetCategoryPng(path, winner, n, side);
  if (n > kMaxNamedCategories) {  // a hue bar by category index instead of names
    Decorate(path, title, 40, [n](sci::Canvas& c, int x, int y, int w) {
      ColourBar(c, x, y, w,
                [n](double t) {
                  const double k = std::min<double>(std::floor(t * n), static_cast<double>(n - 1));
                  return sci::HsvToRgb(360.0 * k / n, 0.8, 0.95);
                },
                "0", "CATEGORY INDEX", std::to_string(n - 1));
    });
    return;
  }
  // Key: one swatch + name per category, in columns that fit the width.
  size_t longest = 4;  // "NONE"
  for (const auto& s : names) longest = std::max(longest, s.size());
  const int col_w = 22 + static_cast<int>(longest) * 12 + 10;
  const at::Tensor img = sci::ReadPngRgb(path);
  const int width = std::max<int>({static_cast<int>(img.size(1)), sci::Canvas::TextWidth(title, 2), 300});
  const int cols = std::max(1, width / col_w);
  const int rows = static_cast<int>((n + 1 + cols - 1) / cols);
  Decorate(path, title, rows * 20 + 4, [&](sci::Canvas& c, int x, int y, int) {
    for (int64_t k = 0; k <= n; ++k) {
      const int cx = x + static_cast<int>(k % cols) * col_w, cy = y + static_cast<int>(k / cols) * 20;
      const sci::Rgb col = k < n ? sci::HsvToRgb(360.0 * k / std::max<int64_t>(n, 1), 0.8, 0.95)
                                 : sci::Rgb{211, 211, 211};
      c.FillRect(cx, cy, 16, 16, col);
      c.Rect(cx, cy, 16, 16, kBlack);
      c.Text(cx + 22, cy, k < n ? names[k] : "none", kBlack, 2);
    }
  });
}

// --- The three analyses --------------------------------------------------------

struct Context {
  const ExtraAnalysisInput& in;
  const AllTnnMapsOptions& o;
  sci::AllTnnImpl& net;
  fs::path dir;
  std::string device;
  int side;

  absl::Status CheckCancel() const {
    if (in.ctx->reporter != nullptr && in.ctx->reporter->CancelRequested()) {
      return absl::CancelledError("extract cancelled");
    }
    return absl::OkStatus();
  }
  void Log(const std::string& s) const {
    if (in.ctx->reporter != nullptr) in.ctx->reporter->Log(std::string(kName) + ": " + s);
  }
  std::string Path(const std::string& file) const { return (dir / file).string(); }
  // Model input for raw [0,1] images: the job's preprocessing.
  at::Tensor Input(const at::Tensor& raw) const { return in.preprocess(raw.to(at::Device(device))); }
};

// Sheet responses [B, Hs*Ws] of layer output [B, C, H, W].
at::Tensor SheetRows(const at::Tensor& layer) {
  at::Tensor s = sci::ChannelsToSheet(layer);
  return s.reshape({s.size(0), -1});
}

absl::StatusOr<Json> Orientation(const Context& cx, const std::vector<int>& layers) {
  const std::vector<std::string>& names = cx.net.LayerNames();
  sci::AllTnnGratingOptions go;
  go.image_size = cx.in.image_size;
  go.wavelengths = cx.o.wavelengths;
  go.n_orientations = static_cast<int>(cx.o.orientations);
  sci::AllTnnGratingSet set(go);
  const int64_t n = set.size();
  std::vector<std::unique_ptr<sci::ConditionAccumulator>> acc(layers.size());
  std::vector<std::pair<int64_t, int64_t>> sheet(layers.size());
  for (int64_t s = 0; s < n; s += cx.in.batch_size) {
    RETURN_IF_ERROR(cx.CheckCancel());
    const int64_t c = std::min(cx.in.batch_size, n - s);
    sci::ModelOutput out = cx.net.Forward(cx.Input(set.Images(s, c)));
    const at::Tensor rows = at::arange(s, s + c, at::kLong);
    for (size_t i = 0; i < layers.size(); ++i) {
      const at::Tensor& y = out.layers[layers[i]];
      if (!acc[i]) {
        auto [c0, c1] = sci::SheetTile(y.size(1));
        sheet[i] = {y.size(2) * c0, y.size(3) * c1};
        acc[i] = std::make_unique<sci::ConditionAccumulator>(n, sheet[i].first * sheet[i].second);
      }
      acc[i]->Add(SheetRows(y), rows);
    }
  }
  Json per_layer = Json::object();
  const at::Tensor orient = set.OrientationLabels();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& l = names[layers[i]];
    const auto [hs, ws] = sheet[i];
    const at::Tensor means = acc[i]->Means().view({n, hs, ws});
    sci::OrientationMaps m = sci::AnalyzeOrientation(means, orient, cx.o.orientations, cx.o.window_half_width);
    const at::Tensor pref_deg = m.preference * 180.0;
    sci::WriteNpy(cx.Path("orientation_preference_" + l + ".npy"), pref_deg.to(at::kFloat));
    sci::WriteNpy(cx.Path("orientation_spread_" + l + ".npy"), m.spread.to(at::kFloat));
    sci::WriteNpy(cx.Path("orientation_entropy_" + l + ".npy"), m.entropy.to(at::kFloat));
    sci::WriteNpy(cx.Path("orientation_cluster_radius_" + l + ".npy"), m.cluster_radius.to(at::kFloat));
    sci::WriteNpy(cx.Path("orientation_tuning_" + l + ".npy"), m.tuning.to(at::kFloat));
    sci::WriteNpy(cx.Path("orientation_fft_profile_" + l + ".npy"), m.fft_profile.to(at::kFloat));
    OrientationFigure(cx.Path("orientation_" + l + ".png"), m.preference,
                      l + " preferred orientation", cx.side);
    ScalarFigure(cx.Path("orientation_spread_" + l + ".png"), m.spread, l + " tuning spread",
                 "sequential", cx.side);
    ScalarFigure(cx.Path("orientation_entropy_" + l + ".png"), m.entropy,
                 absl::StrCat(l, " entropy ", 2 * cx.o.window_half_width + 1, "x",
                              2 * cx.o.window_half_width + 1, " (nats)"),
                 "sequential", cx.side);
    per_layer[l] = {{"sheet", {hs, ws}},
                    {"mean_entropy", Num(m.mean_entropy)},
                    {"mean_cluster_radius", Num(m.mean_cluster_radius)},
                    {"fraction_silent", Num(m.fraction_silent)},
                    {"mean_spread", Num(NanMean(m.spread))},
                    {"fft_profile", Array(m.fft_profile)}};
  }
  return Json{{"stimuli", {{"rows", n},
                           {"image_size", cx.in.image_size},
                           {"wavelengths_px", cx.o.wavelengths},
                           {"orientations", cx.o.orientations}}},
              {"window_half_width", cx.o.window_half_width},
              {"layers", per_layer}};
}

// The category test set: the dataset and the source indices to show, as
// the extract job's categories set chooses them (first per_category of each
// class, grouped by class; every image when per_category is 0).
struct CategoryImages {
  std::unique_ptr<sci::ImageDataset> ds;
  std::vector<int64_t> row_source;
  std::string source;
};

absl::StatusOr<CategoryImages> OpenCategoryImages(const Context& cx) {
  std::string path = cx.o.categories_path;
  std::string key = std::string(kName) + ".categories_path";
  if (path.empty() && cx.in.spec.contains("categories_path") && cx.in.spec["categories_path"].is_string()) {
    path = cx.in.spec["categories_path"].get<std::string>();
    key = "categories_path";
  }
  Json dspec;
  CategoryImages ci;
  if (!path.empty()) {
    dspec = {{"dataset", "image_folder"}, {"path", path}, {"image_size", cx.in.image_size}};
    ci.source = "image_folder:" + path;
  } else {
    dspec = {{"dataset", "fashion_mnist"}, {"image_size", cx.in.image_size}};
    if (cx.in.data_spec.value("dataset", std::string("fashion_mnist")) == "fashion_mnist" &&
        cx.in.data_spec.contains("path")) {
      dspec["path"] = cx.in.data_spec["path"];
    }
    ci.source = "fashion_mnist:test";
    key = std::string(kName) + ".category (Fashion-MNIST test set)";
  }
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = sci::OpenDataset(dspec, "test");
  if (!ds.ok()) return absl::Status(ds.status().code(), key + ": " + std::string(ds.status().message()));
  ci.ds = std::move(*ds);
  if (cx.o.per_category == 0) {
    // Every image: labels arrive with the batches, no separate label pass.
    ci.row_source.resize(ci.ds->size());
    for (int64_t i = 0; i < ci.ds->size(); ++i) ci.row_source[i] = i;
    if (ci.row_source.empty()) return absl::FailedPreconditionError(key + ": no images");
    return ci;
  }
  // The label pass reads the same files through a copy of the dataset at
  // the smallest size (GetBatch always decodes and resizes the images; at
  // 150 px that is most of the cost), same order, same labels.
  dspec["image_size"] = 8;
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> small = sci::OpenDataset(dspec, "test");
  if (!small.ok()) return absl::Status(small.status().code(), key + ": " + std::string(small.status().message()));
  if ((*small)->size() != ci.ds->size()) return absl::InternalError(key + ": dataset size changed while reading");
  std::vector<int64_t> labels(ci.ds->size());
  for (int64_t s = 0; s < ci.ds->size(); s += 512) {
    std::vector<int64_t> idx;
    for (int64_t i = s; i < std::min<int64_t>(ci.ds->size(), s + 512); ++i) idx.push_back(i);
    at::Tensor l = (*small)->GetBatch(idx).second.to(at::kLong).contiguous();
    std::copy(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel(), labels.begin() + s);
  }
  std::vector<int64_t> row_category;
  sci::SelectRowsPerCategory(labels, static_cast<int64_t>(ci.ds->class_names().size()), cx.o.per_category,
                             &row_category, &ci.row_source);
  if (ci.row_source.empty()) return absl::FailedPreconditionError(key + ": no images");
  return ci;
}

absl::StatusOr<Json> Category(const Context& cx, const std::vector<int>& layers) {
  const std::vector<std::string>& names = cx.net.LayerNames();
  ASSIGN_OR_RETURN(CategoryImages ci, OpenCategoryImages(cx));
  const std::vector<std::string>& cats = ci.ds->class_names();
  const int64_t nc = static_cast<int64_t>(cats.size());
  const int64_t n = static_cast<int64_t>(ci.row_source.size());
  std::vector<std::unique_ptr<sci::ConditionAccumulator>> acc(layers.size());
  std::vector<std::pair<int64_t, int64_t>> sheet(layers.size());
  for (int64_t s = 0; s < n; s += cx.in.batch_size) {
    RETURN_IF_ERROR(cx.CheckCancel());
    const int64_t c = std::min(cx.in.batch_size, n - s);
    std::vector<int64_t> src(ci.row_source.begin() + s, ci.row_source.begin() + s + c);
    auto [images, labels] = ci.ds->GetBatch(src);
    sci::ModelOutput out = cx.net.Forward(cx.Input(images));
    for (size_t i = 0; i < layers.size(); ++i) {
      const at::Tensor& y = out.layers[layers[i]];
      if (!acc[i]) {
        auto [c0, c1] = sci::SheetTile(y.size(1));
        sheet[i] = {y.size(2) * c0, y.size(3) * c1};
        acc[i] = std::make_unique<sci::ConditionAccumulator>(nc, sheet[i].first * sheet[i].second,
                                                             /*second_moment=*/true);
      }
      acc[i]->Add(SheetRows(y), labels);
    }
  }
  Json per_layer = Json::object();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& l = names[layers[i]];
    const auto [hs, ws] = sheet[i];
    const at::Tensor d = sci::CategoryDPrime(*acc[i]);  // [C, Hs*Ws], sheet row-major
    const sci::WinnerTakeAll wta = sci::CategoryWinnerTakeAll(d);
    const at::Tensor winner = wta.winner.view({hs, ws});
    sci::WriteNpy(cx.Path("dprime_" + l + ".npy"), d.to(at::kFloat));
    sci::WriteNpy(cx.Path("category_winner_" + l + ".npy"), winner);
    // d' of each unit's winning category (NaN where there is none).
    const at::Tensor win_d = std::get<0>(at::where(at::isnan(wta.masked), at::full_like(wta.masked, -INFINITY),
                                                   wta.masked).max(0));
    const at::Tensor win_map = at::where(at::isinf(win_d), at::full_like(win_d, NAN), win_d).view({hs, ws});
    CategoryFigure(cx.Path("category_wta_" + l + ".png"), winner, cats, l + " winning category", cx.side);
    ScalarFigure(cx.Path("category_wta_dprime_" + l + ".png"), win_map, l + " winner's d'", "sequential",
                 cx.side);
    Json selective = Json::object(), won = Json::object(), max_d = Json::object();
    for (int64_t k = 0; k < nc; ++k) {
      const at::Tensor dk = d[k];
      selective[cats[k]] = Num((dk > cx.o.dprime_threshold).to(at::kDouble).mean().item<double>());
      won[cats[k]] = Num((wta.winner == k).to(at::kDouble).mean().item<double>());
      const at::Tensor fin = dk.masked_select(at::isfinite(dk));
      max_d[cats[k]] = fin.numel() > 0 ? Num(fin.max().item<double>()) : Json(nullptr);
    }
    const at::Tensor radius = sci::ClusterRadius(winner, nc);
    per_layer[l] = {{"sheet", {hs, ws}},
                    {"selective_fraction", selective},
                    {"winner_fraction", won},
                    {"max_dprime", max_d},
                    {"fraction_no_winner", Num((wta.winner < 0).to(at::kDouble).mean().item<double>())},
                    {"mean_cluster_radius", Num(NanMean(radius))}};
  }
  Json counts = Json::object();
  const at::Tensor seen = acc[0]->counts();
  for (int64_t k = 0; k < nc; ++k) counts[cats[k]] = static_cast<int64_t>(seen[k].item<double>());
  return Json{{"source", ci.source},
              {"categories", cats},
              {"images_per_category", counts},
              {"dprime_threshold", cx.o.dprime_threshold},
              {"dprime_unit_order", "sheet row-major: unit = row * sheet_w + col"},
              {"layers", per_layer}};
}

absl::StatusOr<Json> Energy(const Context& cx, const std::vector<int>& stack) {
  const std::vector<std::string>& names = cx.net.LayerNames();
  Json dspec = cx.in.data_spec.is_object() ? cx.in.data_spec : Json::object();
  dspec["image_size"] = cx.in.image_size;
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = sci::OpenDataset(dspec, "test");
  if (!ds.ok()) {
    return absl::Status(ds.status().code(),
                        absl::StrCat(kName, ".images (test split of data): ", ds.status().message()));
  }
  const int64_t n = std::min<int64_t>(cx.o.images, (*ds)->size());
  if (n <= 0) return absl::FailedPreconditionError(absl::StrCat(kName, ".images: the test split is empty"));
  const size_t nl = names.size();
  std::vector<at::Tensor> act(nl), trans(nl);  // sheet sums over images, float64 CPU
  for (int64_t s = 0; s < n; s += cx.in.batch_size) {
    RETURN_IF_ERROR(cx.CheckCancel());
    const int64_t c = std::min(cx.in.batch_size, n - s);
    std::vector<int64_t> idx(c);
    for (int64_t i = 0; i < c; ++i) idx[i] = s + i;
    const at::Tensor x = cx.Input((*ds)->GetBatch(idx).first);
    sci::ModelOutput out = cx.net.Forward(x);
    // TransmissionEnergy takes [0,1] images: undo the same normalisation
    // Forward undoes, so both see identical pixels.
    std::vector<at::Tensor> e = cx.net.TransmissionEnergy(sci::ImageNetToUnit(x));
    for (size_t l = 0; l < nl; ++l) {
      at::Tensor a = sci::ChannelsToSheet(out.layers[l].abs().sum(0)).to(at::kCPU, at::kDouble);
      at::Tensor t = sci::ChannelsToSheet(e[l]).to(at::kCPU, at::kDouble);
      act[l] = act[l].defined() ? act[l] + a : a;
      trans[l] = trans[l].defined() ? trans[l] + t : t;
    }
  }
  Json per_layer = Json::object();
  for (size_t l = 0; l < nl; ++l) {
    const std::string& ln = names[l];
    const at::Tensor mean_act = act[l] / static_cast<double>(n);
    sci::WriteNpy(cx.Path("energy_activation_" + ln + ".npy"), mean_act.to(at::kFloat));
    sci::WriteNpy(cx.Path("energy_transmission_" + ln + ".npy"), trans[l].to(at::kFloat));
    ScalarFigure(cx.Path("energy_activation_" + ln + ".png"), sci::BoxSmoothWrap(mean_act, cx.o.smooth),
                 absl::StrCat(ln, " mean |activation|, box ", cx.o.smooth), "sequential", cx.side);
    ScalarFigure(cx.Path("energy_transmission_" + ln + ".png"), sci::BoxSmoothWrap(trans[l], cx.o.smooth),
                 absl::StrCat(ln, " transmission energy, box ", cx.o.smooth), "sequential", cx.side);
    per_layer[ln] = {{"sheet", {act[l].size(0), act[l].size(1)}},
                     {"activation_l1", Num(act[l].sum().item<double>() / n)},
                     {"activation_l1_per_unit", Num(mean_act.mean().item<double>())},
                     {"transmission_energy", Num(trans[l].sum().item<double>() / n)},
                     {"transmission_disc_profile", Array(sci::DiscProfile(trans[l]))}};
  }
  Json stacked = nullptr;
  if (!stack.empty()) {
    std::vector<at::Tensor> maps;
    std::vector<std::string> stack_names;
    for (int l : stack) {
      maps.push_back(trans[l]);
      stack_names.push_back(names[l]);
    }
    const at::Tensor st = sci::StackMaps(maps);
    const at::Tensor prof = sci::DiscProfile(st);
    sci::WriteNpy(cx.Path("energy_stacked.npy"), st.to(at::kFloat));
    sci::WriteNpy(cx.Path("energy_stacked_disc_profile.npy"), prof.to(at::kFloat));
    ScalarFigure(cx.Path("energy_stacked.png"), st, "stacked transmission energy", "sequential", cx.side);
    stacked = {{"layers", stack_names},
               {"sheet", {st.size(0), st.size(1)}},
               {"total", Num(st.sum().item<double>())},
               {"disc_profile", Array(prof)}};
  }
  return Json{{"images", n}, {"smooth", cx.o.smooth}, {"layers", per_layer}, {"stacked", stacked}};
}

}  // namespace

absl::StatusOr<AllTnnMapsOptions> ParseAllTnnMapsOptions(const Json& obj) {
  AllTnnMapsOptions o;
  if (obj.is_null()) return o;
  if (!obj.is_object()) return absl::InvalidArgumentError(absl::StrCat(kName, ": must be a mapping"));
  static const std::set<std::string> kKeys = {
      "orientation", "layers", "wavelengths", "orientations", "window_half_width",
      "category", "category_layers", "categories_path", "per_category", "dprime_threshold",
      "energy", "images", "smooth", "stack_layers", "png_side"};
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!kKeys.count(it.key())) {
      return absl::InvalidArgumentError(absl::StrCat(kName, ".", it.key(), ": unknown key (known: ",
                                                     absl::StrJoin(kKeys, ", "), ")"));
    }
  }
  namespace sp = sci::spec;
  const std::string p = kName;
  for (absl::Status st :
       {sp::GetBool(obj, "orientation", p, &o.orientation), sp::GetBool(obj, "category", p, &o.category),
        sp::GetBool(obj, "energy", p, &o.energy),
        sp::GetDoubleList(obj, "wavelengths", 2.0, 4096.0, -1, p, &o.wavelengths),
        sp::GetInt(obj, "orientations", 2, 180, p, &o.orientations),
        sp::GetInt(obj, "window_half_width", 0, 1024, p, &o.window_half_width),
        sp::GetInt(obj, "per_category", 0, 1000000, p, &o.per_category),
        sp::GetDouble(obj, "dprime_threshold", -1e6, 1e6, p, &o.dprime_threshold),
        sp::GetInt(obj, "images", 1, 1000000, p, &o.images), sp::GetInt(obj, "smooth", 1, 4096, p, &o.smooth),
        sp::GetInt(obj, "png_side", 16, 4096, p, &o.png_side), GetStringList(obj, "layers", &o.layers),
        GetStringList(obj, "category_layers", &o.category_layers),
        GetStringList(obj, "stack_layers", &o.stack_layers)}) {
    if (!st.ok()) return st;
  }
  if (obj.contains("categories_path") && !obj["categories_path"].is_null()) {
    if (!obj["categories_path"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(kName, ".categories_path: must be a string"));
    }
    o.categories_path = obj["categories_path"].get<std::string>();
  }
  return o;
}

absl::StatusOr<Json> RunAllTnnMaps(const ExtraAnalysisInput& in) {
  const std::string family = in.net != nullptr ? in.net->family() : "(none)";
  auto* net = dynamic_cast<sci::AllTnnImpl*>(in.net);
  if (family != "alltnn" || net == nullptr) {
    return absl::FailedPreconditionError("model family is \"" + family +
                                         "\"; alltnn_maps needs model.family alltnn");
  }
  ASSIGN_OR_RETURN(AllTnnMapsOptions o, ParseAllTnnMapsOptions(in.spec.contains(kName) ? in.spec[kName] : Json()));
  const std::vector<std::string>& names = net->LayerNames();
  std::vector<int> all(names.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  std::vector<int> but_last(all.begin(), all.end() - (all.size() > 1 ? 1 : 0));
  ASSIGN_OR_RETURN(std::vector<int> orient_layers, ResolveLayers(o.layers, names, "layers", all));
  ASSIGN_OR_RETURN(std::vector<int> cat_layers,
                   ResolveLayers(o.category_layers, names, "category_layers", {all.back()}));
  ASSIGN_OR_RETURN(std::vector<int> stack_layers, ResolveLayers(o.stack_layers, names, "stack_layers", but_last));
  if (!o.orientation && !o.category && !o.energy) {
    return absl::InvalidArgumentError(
        absl::StrCat(kName, ": orientation, category and energy are all false: nothing to do"));
  }

  at::NoGradGuard no_grad;
  Context cx{in, o, *net, in.Dir(kName), in.ctx->device.empty() ? "cpu" : in.ctx->device,
             static_cast<int>(o.png_side)};
  Json result = Json::object();
  Json seconds = Json::object();
  using Clock = std::chrono::steady_clock;
  auto timed = [&](const char* part, auto&& fn) -> absl::Status {
    const auto t0 = Clock::now();
    absl::StatusOr<Json> r = fn();
    if (!r.ok()) return r.status();
    result[part] = *r;
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    seconds[part] = s;
    cx.Log(absl::StrCat(part, " done in ", Fmt(s), " s"));
    return absl::OkStatus();
  };
  if (o.orientation) RETURN_IF_ERROR(timed("orientation", [&] { return Orientation(cx, orient_layers); }));
  if (o.category) RETURN_IF_ERROR(timed("category", [&] { return Category(cx, cat_layers); }));
  if (o.energy) RETURN_IF_ERROR(timed("energy", [&] { return Energy(cx, stack_layers); }));
  Json sheets = Json::object();
  for (size_t l = 0; l < names.size(); ++l) {
    const sci::AllTnnLayerGeometry& g = net->geometry()[l];
    auto [c0, c1] = sci::SheetTile(g.out_channels);
    sheets[names[l]] = {{"channels", g.out_channels}, {"grid", {g.out_h, g.out_w}}, {"tile", {c0, c1}},
                        {"sheet", {g.sheet_h, g.sheet_w}}};
  }
  result["sheets"] = sheets;
  result["seconds"] = seconds;
  return result;
}

}  // namespace topolab::worker
