// Stimulus sets for the topographic analyses (tdann.md §6): the factorial
// sine-grating set and labelled category sets (fLoc-style folders, or the
// embedded Fashion-MNIST default).
//
// Every set is *streamed*: Images(start, count) renders or loads only the
// requested rows, so an extraction over any number of stimuli never holds
// more than one batch of images. Every set can describe its rows as JSON
// (written as `stimuli.json` next to the activations), so a user can tell
// which row of an activation file is which stimulus.
//
// Images are float32 [n, 3, S, S] in [0, 1] (not normalised; the caller
// applies the model's own preprocessing). All functions are pure and
// thread-compatible.
#ifndef TOPOLAB_WORKER_SCIENCE_STIMULI_STIMULI_H_
#define TOPOLAB_WORKER_SCIENCE_STIMULI_STIMULI_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace topolab::science {

// A finite, ordered set of images that can be read in any slice.
class StimulusSet {
 public:
  virtual ~StimulusSet() = default;
  virtual std::string name() const = 0;          // "sine_gratings", "categories"
  virtual int64_t size() const = 0;              // number of rows
  virtual int64_t image_size() const = 0;        // side S in px
  // Rows [start, start + count) as float32 [count, 3, S, S] in [0, 1].
  // REQUIRES: 0 <= start, count >= 0, start + count <= size().
  virtual at::Tensor Images(int64_t start, int64_t count) const = 0;
  // The `stimuli.json` document: {"name", "size", "image_size", "rows": [...],
  // plus set-specific keys}. Each row object starts with "index".
  virtual nlohmann::json Describe() const = 0;
};

// ---------------------------------------------------------------------------
// Sine gratings (SineGrating2019 design, tdann.md §6)
// ---------------------------------------------------------------------------

inline constexpr int kNumOrientations = 8;
inline constexpr int kNumSpatialFrequencies = 8;
inline constexpr int kNumPhases = 5;
inline constexpr int kNumColours = 2;
inline constexpr int kNumGratings =
    kNumOrientations * kNumSpatialFrequencies * kNumPhases * kNumColours;  // 640

struct GratingOptions {
  int64_t image_size = 224;  // side in px; any size >= 1
  // "linear" (OFFICIAL): linspace(5.5, 110, 9)[:-1] cycles per image.
  // "log" (⚠ REPRO): 8 log-spaced values 0.5..12 cycles/deg, times
  // `visual_field_deg` to get cycles per image.
  std::string sf_spacing = "linear";
  double visual_field_deg = 8.0;  // the image spans this many degrees
};

// One row's factor levels.
struct GratingCondition {
  int orientation = 0;  // 0..7 -> orientation_deg = 22.5 * orientation
  int frequency = 0;    // 0..7 -> index into GratingFrequencies()
  int phase = 0;        // 0..4 -> phase = 2*pi*phase/5
  int colour = 0;       // 0 = black/white, 1 = red/cyan
};

// Row index = ((orientation*8 + frequency)*5 + phase)*2 + colour.
int64_t GratingRowIndex(const GratingCondition& c);
// Inverse of GratingRowIndex. REQUIRES: 0 <= row < kNumGratings.
GratingCondition GratingConditionOfRow(int64_t row);

double GratingOrientationDeg(int orientation);  // 22.5 * orientation
double GratingPhaseRad(int phase);              // 2*pi*phase/5
// The 8 spatial frequencies in cycles per image for `options`.
std::vector<double> GratingFrequencies(const GratingOptions& options);

// Factor labels of every row as int64 [kNumGratings] tensors, for the
// per-condition accumulators: factor is "orientation", "frequency", "phase",
// "colour" or "orientation_phase" (orientation*5 + phase, 40 levels).
at::Tensor GratingFactorLabels(const std::string& factor);

// Renders one grating: value g = 0.5 + 0.5*sin(2*pi*f*(x cos(theta) +
// y sin(theta))/S + phi), x = column index, y = row index (pixels, origin at
// the top-left pixel). Black/white: R = G = B = g. Red/cyan: R = g,
// G = B = 1 - g. Returns float32 [3, S, S].
at::Tensor RenderGrating(const GratingCondition& c, const GratingOptions& options);

class GratingSet : public StimulusSet {
 public:
  explicit GratingSet(GratingOptions options);
  std::string name() const override { return "sine_gratings"; }
  int64_t size() const override { return kNumGratings; }
  int64_t image_size() const override { return options_.image_size; }
  at::Tensor Images(int64_t start, int64_t count) const override;
  // rows: {"index", "orientation", "orientation_deg", "frequency",
  // "cycles_per_image", "cycles_per_deg", "phase", "phase_rad", "colour"
  // ("bw"|"red_cyan")}.
  nlohmann::json Describe() const override;
  const GratingOptions& options() const { return options_; }

 private:
  GratingOptions options_;
  std::vector<double> frequencies_;
};

// ---------------------------------------------------------------------------
// Category sets (fLoc, Fashion-MNIST)
// ---------------------------------------------------------------------------

// Domain name -> categories that form its "on" set. Off = all other rows.
using DomainMap = std::map<std::string, std::vector<std::string>>;

// The fLoc domain contrasts of tdann.md §6: faces = adult+child, bodies =
// body+limb, characters = word+number, places = house+corridor, objects =
// car+instrument.
DomainMap FlocDomains();

// The documented grouping of Fashion-MNIST's 10 classes (labels 0..9 =
// T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
// Ankle boot) into 5 two-class domains:
//   tops        = T-shirt/top (0) + Shirt (6)     short upper-body garments
//   outerwear   = Pullover (2) + Coat (4)         long-sleeved warm layers
//   long_shapes = Trouser (1) + Dress (3)         tall, narrow silhouettes
//   shoes       = Sandal (5) + Sneaker (7)        low footwear
//   boots_bags  = Bag (8) + Ankle boot (9)        compact, heavy shapes
// `class_names` are the dataset's names in label order (so the map uses
// whatever spelling the loader has). REQUIRES: class_names.size() == 10.
DomainMap FashionMnistDomains(const std::vector<std::string>& class_names);

// Loads images for a list of source indices (e.g. ImageDataset::GetBatch),
// returning float32 [n, 3, S, S] in [0, 1].
using ImageLoader = std::function<at::Tensor(const std::vector<int64_t>&)>;

class CategorySet : public StimulusSet {
 public:
  // `categories`: category names; `row_category[i]` the category index of
  // row i; `row_source[i]` the index passed to `loader` for row i.
  // REQUIRES: row_category.size() == row_source.size(); every category index
  // in [0, categories.size()); every domain category is in `categories`
  // (checked by ValidateDomains before construction).
  CategorySet(std::vector<std::string> categories, std::vector<int64_t> row_category,
              std::vector<int64_t> row_source, DomainMap domains, int64_t image_size,
              ImageLoader loader, std::string source_description);

  std::string name() const override { return "categories"; }
  int64_t size() const override { return static_cast<int64_t>(row_category_.size()); }
  int64_t image_size() const override { return image_size_; }
  at::Tensor Images(int64_t start, int64_t count) const override;
  // rows: {"index", "category", "category_index", "domains": [...],
  // "source_index"}; plus "categories", "domains" at top level.
  nlohmann::json Describe() const override;

  const std::vector<std::string>& categories() const { return categories_; }
  const DomainMap& domains() const { return domains_; }
  // Category index per row, int64 [size()].
  at::Tensor Labels() const;

 private:
  std::vector<std::string> categories_;
  std::vector<int64_t> row_category_;
  std::vector<int64_t> row_source_;
  DomainMap domains_;
  int64_t image_size_;
  ImageLoader loader_;
  std::string source_description_;
};

// Returns "" if every domain is non-empty and names only known categories,
// else a message naming the first offending domain/category.
std::string ValidateDomains(const DomainMap& domains, const std::vector<std::string>& categories);

// Picks rows from labelled source data: for each category, the first
// `per_category` source indices (in source order) whose label is that
// category (all of them when per_category <= 0). Rows are grouped by
// category in category order. `labels[i]` is the category of source index i.
void SelectRowsPerCategory(const std::vector<int64_t>& labels, int64_t num_categories,
                           int64_t per_category, std::vector<int64_t>* row_category,
                           std::vector<int64_t>* row_source);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_STIMULI_STIMULI_H_
