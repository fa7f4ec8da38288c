// All-TNN analyses on the cortical sheet (models.md §1.4): orientation maps
// from full-field gratings (max over phase, doubled-circle vector sum,
// spread, window-entropy smoothness, cluster size, FFT radial profile),
// category d' with winner-take-all maps, and energy maps (activation L1,
// transmission energy, box smoothing, stacked map, radial disc profile).
//
// Sheets are [Hs, Ws] tensors (see alltnn.h for the channel -> sheet layout);
// responses on a sheet are [n_stimuli, Hs, Ws]. ATen only; pure functions.
//
// Documented choices:
//  * Gratings: rows are (wavelength, orientation, phase) with
//    n_phases = round(lambda) phases 2*pi*p/n_phases (= 360*p/lambda for the
//    integer wavelengths the paper uses). Tuning = max over phase (and over
//    wavelengths when several are given).
//  * Preference bins are centred on the 8 tested orientations:
//    bin = round(8 * pref) mod 8, so a unit tuned exactly to orientation k
//    lands in bin k whatever the float round-off.
//  * FFT profile: the map is embedded as exp(2*pi*i*pref) (0 for silent
//    units), so the circular preference has no artificial jump at 0/180 deg;
//    power |fftshift(fft2)|^2 is averaged over rings of integer radius.
//  * Even box windows (8x8 energy smoothing) span offsets -4..+3.
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_ANALYSIS_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_ANALYSIS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "worker/science/analysis/accumulators.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::science {

// Full-field sine gratings of models.md §1.4: g = sin(theta)*x - cos(theta)*y
// (x = column, y = row, pixels), image = sin(2*pi*g/lambda + phase), value in
// [0,1] = (image + 1)/2 on all three channels (= 255*(img+1)/2 / 255).
// Rows ordered wavelength (outer) -> orientation -> phase (inner).
struct AllTnnGratingOptions {
  int64_t image_size = 150;
  std::vector<double> wavelengths = {3.0};
  int n_orientations = 8;  // theta_a = pi*a/n
};

class AllTnnGratingSet : public StimulusSet {
 public:
  explicit AllTnnGratingSet(AllTnnGratingOptions options);
  std::string name() const override { return "alltnn_gratings"; }
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  int64_t image_size() const override { return options_.image_size; }
  at::Tensor Images(int64_t start, int64_t count) const override;
  nlohmann::json Describe() const override;
  // Orientation index per row, int64 [size()].
  at::Tensor OrientationLabels() const;

 private:
  struct Row {
    double wavelength;
    int orientation;
    double phase;
  };
  AllTnnGratingOptions options_;
  std::vector<Row> rows_;
};

// Doubled-circle vector-sum preference of tuning curves [K, ...] (K
// orientations over 180 deg): atan2(sum a_k sin phi_k, sum a_k cos phi_k)
// mod 2*pi / (2*pi) with phi_k = 2*pi*k/K; value in [0,1) (x 180 = degrees).
at::Tensor VectorSumPreference(const at::Tensor& tuning);
// std_k(a) / sum_k a, divided by the std of a one-hot length-K vector (1 for
// a unit that answers one orientation only, 0 for a flat curve). Population
// std. NaN where sum_k a == 0.
at::Tensor TuningSpread(const at::Tensor& tuning);

// Sums of `maps` [B, H, W] over (2r+1)x(2r+1) windows wrapping at the edges.
at::Tensor BoxSumWrap(const at::Tensor& maps, int64_t r);

// Shannon entropy (nats) of the histogram of `bins` [H, W] (values in
// [0, n_bins), -1 = ignore) in the wrapped (2*half+1)^2 window around each
// position; NaN where the window holds no counted unit.
at::Tensor WindowEntropy(const at::Tensor& bins, int64_t n_bins, int64_t half_width = 4);

// Smallest square radius r whose wrapped (2r+1)^2 window around each
// position contains every one of n_bins bins (ignoring -1 entries); NaN when
// r would reach half the sheet (min(H, W)/2). float64 [H, W].
at::Tensor ClusterRadius(const at::Tensor& bins, int64_t n_bins);

// Mean of `power` [H, W] over rings of integer radius around (H/2, W/2),
// float64 [1 + max radius].
at::Tensor RadialProfile(const at::Tensor& power);

// Power spectrum radial profile of a preference map (see file comment).
at::Tensor PreferenceFftProfile(const at::Tensor& preference, const at::Tensor& silent);

struct OrientationMaps {
  at::Tensor tuning;          // [K, Hs, Ws] max over phase
  at::Tensor preference;      // [Hs, Ws] in [0,1), NaN for silent units
  at::Tensor spread;          // [Hs, Ws], NaN for silent units
  at::Tensor silent;          // [Hs, Ws] bool
  at::Tensor bins;            // [Hs, Ws] int64, -1 for silent
  at::Tensor entropy;         // [Hs, Ws] window entropy
  double mean_entropy = 0;    // nanmean
  at::Tensor cluster_radius;  // [Hs, Ws]
  double mean_cluster_radius = 0;  // nanmean (NaN if never reached)
  at::Tensor fft_profile;     // radial power profile
  double fraction_silent = 0;
};
// `row_means` [n_rows, Hs, Ws]: the mean (or single) response to each grating
// row; `orientation_of_row` [n_rows] int64 in [0, K). Silent units (spread 0
// or undefined) are excluded from bins/entropy/cluster size.
OrientationMaps AnalyzeOrientation(const at::Tensor& row_means, const at::Tensor& orientation_of_row,
                                   int64_t n_orientations = 8, int64_t window_half_width = 4);

// d' of every category against the pooled others, from an accumulator fed
// with (responses, category) and second moments on:
//   d'_c = (mu_c - mu_rest) / ((sd_c + sd_rest)/2 + 1e-10), population sds.
// float64 [n_categories, U].
at::Tensor CategoryDPrime(const ConditionAccumulator& acc);
// Convenience for whole matrices: responses [n, U], labels [n].
at::Tensor CategoryDPrime(const at::Tensor& responses, const at::Tensor& labels, int64_t n_categories);

struct WinnerTakeAll {
  at::Tensor winner;  // [U] int64 category whose d' beats all others strictly, -1 on ties
  at::Tensor masked;  // [C, U] d'_c where c is the winner, NaN elsewhere
};
WinnerTakeAll CategoryWinnerTakeAll(const at::Tensor& dprime);

// Mean of `map` [H, W] over size x size windows (wrapping).
at::Tensor BoxSmoothWrap(const at::Tensor& map, int64_t size = 8);
// Resizes each map to the largest (bilinear, corners aligned: a linear
// zoom) and sums them.
at::Tensor StackMaps(const std::vector<at::Tensor>& maps);
// Mean of `map` inside discs of radius 1..R around the centre, R =
// min(H, W)/2; float64 [R].
at::Tensor DiscProfile(const at::Tensor& map);

// ---------------------------------------------------------------------------
// PNG maps of sheets (drawn with viz/'s Canvas and colours; each sheet cell is
// a square block, the picture at least `min_side` px). Row 0 of the sheet is
// the top row of the picture. NaN cells are light grey. Throw
// std::runtime_error naming the path if the file cannot be written.
// ---------------------------------------------------------------------------

// Preference in [0,1) (x 180 deg) coloured with viz's OrientationColour.
void WriteSheetOrientationPng(const std::string& path, const at::Tensor& preference,
                              int min_side = 256);
// Scalar map: "diverging" (blue-white-red, symmetric around 0, clipped at the
// 99th percentile of |x|) or "sequential" (black -> red -> yellow -> white
// from min to max).
// The value range WriteSheetScalarPng maps onto its colours: diverging =
// [-h, h] with h the 99th percentile of |x| over finite cells; sequential =
// [min, max] (hi = lo + 1 when the map is flat). NaN/inf cells are ignored.
std::pair<double, double> SheetScalarRange(const at::Tensor& map, const std::string& colours);
void WriteSheetScalarPng(const std::string& path, const at::Tensor& map,
                         const std::string& colours = "sequential", int min_side = 256);
// Category index per cell (-1 = none, grey), one hue per category.
void WriteSheetCategoryPng(const std::string& path, const at::Tensor& winner, int64_t n_categories,
                           int min_side = 256);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_ANALYSIS_H_
