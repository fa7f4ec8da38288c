// Cortical sheet geometry and the training-neighbourhood pool (spec §2).
#include "worker/science/tdann/sheet.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "worker/science/tdann/rng.h"

namespace topolab::science {

absl::StatusOr<SheetScale> ParseSheetScale(std::string_view name) {
  if (name == "human") return SheetScale::kHuman;
  if (name == "train") return SheetScale::kTrain;
  return absl::InvalidArgumentError(
      absl::StrCat("sheet scale: must be \"human\" or \"train\", got \"", std::string(name), "\""));
}

absl::StatusOr<CorticalRegion> RegionForLayer(std::string_view layer) {
  // Spec §2 table: human-scale side and the version-1 (training) factor.
  if (layer == "layer1.0" || layer == "layer1.1") return CorticalRegion{"retina", 2.4, 0.6};
  if (layer == "layer2.0" || layer == "layer2.1") return CorticalRegion{"V1", 36.75, 1.5};
  if (layer == "layer3.0") return CorticalRegion{"V2", 35.0, 1.75};
  if (layer == "layer3.1") return CorticalRegion{"V4", 22.4, 1.4};
  if (layer == "layer4.0" || layer == "layer4.1") return CorticalRegion{"VTC", 70.0, 7.0};
  return absl::NotFoundError(absl::StrCat("no cortical sheet size for layer \"", std::string(layer),
                                          "\" (known: layer1.0 ... layer4.1)"));
}

double RfOverlap(int64_t n) {
  TORCH_CHECK(n >= 1, "RfOverlap: n must be >= 1");
  return std::min(0.1 * (56.0 / static_cast<double>(n)), 1.0);
}

double HypercolumnWidth(double side_mm, int64_t n, double overlap) {
  TORCH_CHECK(n >= 1 && overlap >= 0 && overlap <= 1, "HypercolumnWidth: bad n/overlap");
  const double nd = static_cast<double>(n);
  return side_mm / (nd - nd * overlap + overlap);
}

absl::StatusOr<CorticalSheet> BuildCorticalSheet(int64_t channels, int64_t height,
                                                 int64_t width, const SheetOptions& options) {
  if (channels < 1 || height < 1 || width < 1) {
    return absl::InvalidArgumentError(absl::StrCat("cortical sheet: feature map ", channels, "x",
                                                   height, "x", width, " must be non-empty"));
  }
  if (height != width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cortical sheet: feature map must be square, got ", height, "x", width));
  }
  if (!(options.side_mm > 0) || !std::isfinite(options.side_mm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cortical sheet: side_mm must be > 0, got ", options.side_mm));
  }
  if (options.rf_overlap > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cortical sheet: rf_overlap must be <= 1, got ", options.rf_overlap));
  }
  if (options.jitter_sd_mm < 0) {
    return absl::InvalidArgumentError("cortical sheet: jitter_sd_mm must be >= 0");
  }
  const int64_t n = height;
  CorticalSheet sheet;
  sheet.channels = channels;
  sheet.height = height;
  sheet.width = width;
  sheet.side_mm = options.side_mm;
  sheet.rf_overlap = options.rf_overlap < 0 ? RfOverlap(n) : options.rf_overlap;
  sheet.hypercolumn_width_mm = HypercolumnWidth(options.side_mm, n, sheet.rf_overlap);
  const double r = sheet.hypercolumn_width_mm / 2;

  // Computed in float64 and stored as float32 (the artifact dtype).
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor anchors = at::linspace(r, options.side_mm - r, n, f64);  // [N]
  // Broadcast to [C, H, W]: x from the column index w, y from the row index h.
  at::Tensor ax = anchors.view({1, 1, n}).expand({channels, n, n}).reshape({-1});
  at::Tensor ay = anchors.view({1, n, 1}).expand({channels, n, n}).reshape({-1});
  at::Tensor pos = at::stack({ax, ay}, 1);  // [U, 2]

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const int64_t units = sheet.num_units();
  // Step 4: independent uniform offsets in [-r, r]^2 per unit.
  at::Tensor offsets = at::rand({units, 2}, gen, f64).mul_(2 * r).sub_(r);
  pos.add_(offsets);
  // Step 5: gaussian jitter, then restore each axis' pre-jitter range.
  if (options.jitter_sd_mm > 0) {
    at::Tensor lo = std::get<0>(pos.min(0));   // [2]
    at::Tensor hi = std::get<0>(pos.max(0));
    at::Tensor jittered = pos + at::randn({units, 2}, gen, f64).mul_(options.jitter_sd_mm);
    at::Tensor jlo = std::get<0>(jittered.min(0));
    at::Tensor jhi = std::get<0>(jittered.max(0));
    at::Tensor jrange = jhi - jlo;
    // A single unit (or coincident units) has zero range: nothing to rescale.
    at::Tensor scale = at::where(jrange > 0, (hi - lo) / jrange.clamp_min(1e-300),
                                 at::zeros_like(jrange));
    pos = (jittered - jlo) * scale + lo;
  }
  sheet.positions = pos.to(at::kFloat).contiguous();
  return sheet;
}

at::Tensor BuildNeighborhoodPool(const at::Tensor& positions, double width_mm,
                                 const NeighborhoodPoolOptions& options) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 2 && positions.size(0) >= 1,
              "BuildNeighborhoodPool: positions must be [U, 2]");
  TORCH_CHECK(width_mm > 0, "BuildNeighborhoodPool: width_mm must be > 0");
  TORCH_CHECK(options.num_windows >= 1 && options.min_size >= 1 &&
                  options.max_size >= options.min_size && options.percentile >= 0 &&
                  options.percentile <= 100,
              "BuildNeighborhoodPool: bad options");
  at::Tensor p = positions.to(at::kDouble).contiguous();
  const int64_t units = p.size(0);
  const double* xy = p.data_ptr<double>();
  const double r = width_mm / 2;
  double min_x = xy[0], max_x = xy[0], min_y = xy[1], max_y = xy[1];
  for (int64_t i = 1; i < units; ++i) {
    min_x = std::min(min_x, xy[2 * i]);
    max_x = std::max(max_x, xy[2 * i]);
    min_y = std::min(min_y, xy[2 * i + 1]);
    max_y = std::max(max_y, xy[2 * i + 1]);
  }
  const SquareGrid grid(xy, units, min_x, min_y, width_mm);

  // Window centres, drawn up front so both passes see the same windows.
  SplitMix64 rng(options.seed ^ 0x6e65696768626f72ULL);
  auto centre = [&](double lo, double hi) {
    if (hi - lo <= 2 * r) return (lo + hi) / 2;
    return lo + r + rng.Uniform() * (hi - lo - 2 * r);
  };
  std::vector<std::pair<double, double>> centres(options.num_windows);
  for (auto& c : centres) {
    c.first = centre(min_x, max_x);
    c.second = centre(min_y, max_y);
  }
  std::vector<int64_t> counts(options.num_windows);
  std::vector<int64_t> members;
  for (int64_t k = 0; k < options.num_windows; ++k) {
    members.clear();
    grid.Query(centres[k].first - r, centres[k].second - r, width_mm, &members);
    counts[k] = static_cast<int64_t>(members.size());
  }
  // numpy-style linear-interpolated percentile, truncated to an integer.
  std::vector<int64_t> sorted = counts;
  std::sort(sorted.begin(), sorted.end());
  const double rank = options.percentile / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double pct = static_cast<double>(sorted[lo]) +
                     (rank - static_cast<double>(lo)) * static_cast<double>(sorted[hi] - sorted[lo]);
  int64_t k_size = std::max<int64_t>(static_cast<int64_t>(std::floor(pct)), options.min_size);
  k_size = std::min({k_size, options.max_size, units});

  std::vector<int64_t> rows;
  for (int64_t k = 0; k < options.num_windows; ++k) {
    if (counts[k] < k_size) continue;
    members.clear();
    grid.Query(centres[k].first - r, centres[k].second - r, width_mm, &members);
    // Partial Fisher–Yates: the first k_size entries become a uniform sample
    // without replacement.
    for (int64_t i = 0; i < k_size; ++i) {
      const int64_t j = i + static_cast<int64_t>(rng.Below(members.size() - i));
      std::swap(members[i], members[j]);
    }
    std::sort(members.begin(), members.begin() + k_size);
    rows.insert(rows.end(), members.begin(), members.begin() + k_size);
  }
  const int64_t kept = static_cast<int64_t>(rows.size()) / std::max<int64_t>(k_size, 1);
  at::Tensor out = at::empty({kept, k_size}, at::kLong);
  std::copy(rows.begin(), rows.end(), out.data_ptr<int64_t>());
  return out;
}

absl::StatusOr<CorticalSheet> BuildLayerSheet(const LayerSheetSpec& spec, double jitter_sd_mm,
                                              uint64_t seed) {
  SheetOptions options;
  options.jitter_sd_mm = jitter_sd_mm;
  options.seed = seed;
  if (spec.side_mm > 0) {
    options.side_mm = spec.side_mm;
  } else {
    auto region = RegionForLayer(spec.layer);
    if (!region.ok()) return region.status();
    options.side_mm = region->SideMm(spec.scale);
  }
  return BuildCorticalSheet(spec.channels, spec.size, spec.size, options);
}

}  // namespace topolab::science
