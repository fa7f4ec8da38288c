// Grating rendering and category-set bookkeeping (see stimuli.h).
#include "worker/science/stimuli/stimuli.h"

#include <cmath>
#include <set>
#include <stdexcept>
#include <utility>

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

void CheckSlice(int64_t start, int64_t count, int64_t size, const char* what) {
  if (start < 0 || count < 0 || start + count > size) {
    throw std::out_of_range(std::string(what) + ": rows [" + std::to_string(start) + ", " +
                            std::to_string(start + count) + ") outside [0, " +
                            std::to_string(size) + ")");
  }
}

}  // namespace

int64_t GratingRowIndex(const GratingCondition& c) {
  return ((static_cast<int64_t>(c.orientation) * kNumSpatialFrequencies + c.frequency) *
              kNumPhases +
          c.phase) *
             kNumColours +
         c.colour;
}

GratingCondition GratingConditionOfRow(int64_t row) {
  GratingCondition c;
  c.colour = static_cast<int>(row % kNumColours);
  row /= kNumColours;
  c.phase = static_cast<int>(row % kNumPhases);
  row /= kNumPhases;
  c.frequency = static_cast<int>(row % kNumSpatialFrequencies);
  c.orientation = static_cast<int>(row / kNumSpatialFrequencies);
  return c;
}

double GratingOrientationDeg(int orientation) { return 180.0 * orientation / kNumOrientations; }
double GratingPhaseRad(int phase) { return 2.0 * kPi * phase / kNumPhases; }

std::vector<double> GratingFrequencies(const GratingOptions& options) {
  std::vector<double> f(kNumSpatialFrequencies);
  if (options.sf_spacing == "log") {
    // 0.5..12 cycles/deg, log-spaced, converted to cycles per image.
    for (int i = 0; i < kNumSpatialFrequencies; ++i) {
      double t = static_cast<double>(i) / (kNumSpatialFrequencies - 1);
      f[i] = std::exp(std::log(0.5) + t * (std::log(12.0) - std::log(0.5))) *
             options.visual_field_deg;
    }
  } else if (options.sf_spacing == "linear") {
    // linspace(5.5, 110, 9) without its last value.
    for (int i = 0; i < kNumSpatialFrequencies; ++i) f[i] = 5.5 + i * (110.0 - 5.5) / 8.0;
  } else {
    throw std::invalid_argument("sf_spacing: must be \"linear\" or \"log\", got \"" +
                                options.sf_spacing + "\"");
  }
  return f;
}

at::Tensor GratingFactorLabels(const std::string& factor) {
  at::Tensor out = at::empty({kNumGratings}, at::kLong);
  auto* p = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < kNumGratings; ++r) {
    GratingCondition c = GratingConditionOfRow(r);
    if (factor == "orientation") {
      p[r] = c.orientation;
    } else if (factor == "frequency") {
      p[r] = c.frequency;
    } else if (factor == "phase") {
      p[r] = c.phase;
    } else if (factor == "colour") {
      p[r] = c.colour;
    } else if (factor == "orientation_phase") {
      p[r] = c.orientation * kNumPhases + c.phase;
    } else {
      throw std::invalid_argument("unknown grating factor \"" + factor + "\"");
    }
  }
  return out;
}

namespace {

at::Tensor RenderWithFrequency(const GratingCondition& c, double cycles_per_image, int64_t s) {
  const double theta = GratingOrientationDeg(c.orientation) * kPi / 180.0;
  const double phi = GratingPhaseRad(c.phase);
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor coord = at::arange(s, opts);
  at::Tensor x = coord.view({1, s});  // columns
  at::Tensor y = coord.view({s, 1});  // rows
  at::Tensor arg = (x * std::cos(theta) + y * std::sin(theta)) *
                       (2.0 * kPi * cycles_per_image / static_cast<double>(s)) +
                   phi;
  at::Tensor g = (0.5 + 0.5 * at::sin(arg)).to(at::kFloat);
  if (c.colour == 0) return at::stack({g, g, g});
  at::Tensor inv = 1.0 - g;
  return at::stack({g, inv, inv});
}

}  // namespace

at::Tensor RenderGrating(const GratingCondition& c, const GratingOptions& options) {
  return RenderWithFrequency(c, GratingFrequencies(options)[c.frequency], options.image_size);
}

GratingSet::GratingSet(GratingOptions options)
    : options_(std::move(options)), frequencies_(GratingFrequencies(options_)) {
  if (options_.image_size < 1) throw std::invalid_argument("image_size: must be >= 1");
}

at::Tensor GratingSet::Images(int64_t start, int64_t count) const {
  CheckSlice(start, count, size(), "sine_gratings");
  const int64_t s = options_.image_size;
  at::Tensor out = at::empty({count, 3, s, s}, at::kFloat);
  for (int64_t i = 0; i < count; ++i) {
    GratingCondition c = GratingConditionOfRow(start + i);
    out[i].copy_(RenderWithFrequency(c, frequencies_[c.frequency], s));
  }
  return out;
}

nlohmann::json GratingSet::Describe() const {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < kNumGratings; ++r) {
    GratingCondition c = GratingConditionOfRow(r);
    rows.push_back({{"index", r},
                    {"orientation", c.orientation},
                    {"orientation_deg", GratingOrientationDeg(c.orientation)},
                    {"frequency", c.frequency},
                    {"cycles_per_image", frequencies_[c.frequency]},
                    {"cycles_per_deg", frequencies_[c.frequency] / options_.visual_field_deg},
                    {"phase", c.phase},
                    {"phase_rad", GratingPhaseRad(c.phase)},
                    {"colour", c.colour == 0 ? "bw" : "red_cyan"}});
  }
  return {{"name", name()},
          {"size", size()},
          {"image_size", options_.image_size},
          {"sf_spacing", options_.sf_spacing},
          {"visual_field_deg", options_.visual_field_deg},
          {"row_order", "((orientation*8 + frequency)*5 + phase)*2 + colour"},
          {"formula",
           "0.5 + 0.5*sin(2*pi*f*(x*cos(theta) + y*sin(theta))/S + phase); x = column, y = row; "
           "bw: R=G=B=g; red_cyan: R=g, G=B=1-g"},
          {"rows", std::move(rows)}};
}

DomainMap FlocDomains() {
  return {{"faces", {"adult", "child"}},
          {"bodies", {"body", "limb"}},
          {"characters", {"word", "number"}},
          {"places", {"house", "corridor"}},
          {"objects", {"car", "instrument"}}};
}

DomainMap FashionMnistDomains(const std::vector<std::string>& n) {
  if (n.size() != 10) {
    throw std::invalid_argument("Fashion-MNIST domains need the 10 class names, got " +
                                std::to_string(n.size()));
  }
  return {{"tops", {n[0], n[6]}},
          {"outerwear", {n[2], n[4]}},
          {"long_shapes", {n[1], n[3]}},
          {"shoes", {n[5], n[7]}},
          {"boots_bags", {n[8], n[9]}}};
}

std::string ValidateDomains(const DomainMap& domains, const std::vector<std::string>& categories) {
  if (domains.empty()) return "domains: must name at least one domain";
  std::set<std::string> known(categories.begin(), categories.end());
  for (const auto& [domain, cats] : domains) {
    if (cats.empty()) return "domains." + domain + ": must list at least one category";
    if (cats.size() >= categories.size()) {
      return "domains." + domain + ": must leave at least one category off";
    }
    for (const auto& c : cats) {
      if (!known.count(c)) return "domains." + domain + ": unknown category \"" + c + "\"";
    }
  }
  return "";
}

void SelectRowsPerCategory(const std::vector<int64_t>& labels, int64_t num_categories,
                           int64_t per_category, std::vector<int64_t>* row_category,
                           std::vector<int64_t>* row_source) {
  row_category->clear();
  row_source->clear();
  std::vector<std::vector<int64_t>> by_cat(num_categories);
  for (size_t i = 0; i < labels.size(); ++i) {
    int64_t l = labels[i];
    if (l < 0 || l >= num_categories) continue;
    if (per_category > 0 && static_cast<int64_t>(by_cat[l].size()) >= per_category) continue;
    by_cat[l].push_back(static_cast<int64_t>(i));
  }
  for (int64_t c = 0; c < num_categories; ++c) {
    for (int64_t src : by_cat[c]) {
      row_category->push_back(c);
      row_source->push_back(src);
    }
  }
}

CategorySet::CategorySet(std::vector<std::string> categories, std::vector<int64_t> row_category,
                         std::vector<int64_t> row_source, DomainMap domains, int64_t image_size,
                         ImageLoader loader, std::string source_description)
    : categories_(std::move(categories)),
      row_category_(std::move(row_category)),
      row_source_(std::move(row_source)),
      domains_(std::move(domains)),
      image_size_(image_size),
      loader_(std::move(loader)),
      source_description_(std::move(source_description)) {
  if (row_category_.size() != row_source_.size()) {
    throw std::invalid_argument("CategorySet: row_category and row_source differ in length");
  }
}

at::Tensor CategorySet::Images(int64_t start, int64_t count) const {
  CheckSlice(start, count, size(), "categories");
  std::vector<int64_t> src(row_source_.begin() + start, row_source_.begin() + start + count);
  return loader_(src);
}

at::Tensor CategorySet::Labels() const {
  return at::tensor(row_category_, at::kLong);
}

nlohmann::json CategorySet::Describe() const {
  // Category -> domains it belongs to (a category may serve several).
  std::vector<std::vector<std::string>> cat_domains(categories_.size());
  for (const auto& [domain, cats] : domains_) {
    for (const auto& c : cats) {
      for (size_t k = 0; k < categories_.size(); ++k) {
        if (categories_[k] == c) cat_domains[k].push_back(domain);
      }
    }
  }
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < row_category_.size(); ++i) {
    int64_t c = row_category_[i];
    rows.push_back({{"index", static_cast<int64_t>(i)},
                    {"category", categories_[c]},
                    {"category_index", c},
                    {"domains", cat_domains[c]},
                    {"source_index", row_source_[i]}});
  }
  return {{"name", name()},
          {"size", size()},
          {"image_size", image_size_},
          {"source", source_description_},
          {"categories", categories_},
          {"domains", domains_},
          {"rows", std::move(rows)}};
}

}  // namespace topolab::science
