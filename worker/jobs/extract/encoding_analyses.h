// The expansion model's read-out analyses (models.md §2.2-2.3) as extract
// analyses, usable with any family: `encoding` (ridge encoding score of a
// model's layers on user neural data), `pca` (variance spectrum and effective
// dimensionality of layer activations) and `linear_probe` (logistic
// regression on frozen features). A job lists them in `analyses:`; each reads
// its options from the spec object of the same name, writes files under
// out_dir/<name>/ and returns the JSON that lands in metrics.json under
// analyses.<name>. The science is worker/science/families/encoding.h.
//
// Shared rules
//  * Layers: names from the model's LayerNames() (expansion: block1..block5;
//    ResNet-18: layer1.0..layer4.1) or "features" (ModelOutput::features).
//    Unknown names give InvalidArgument "<analysis>.layers: unknown layer".
//  * Feature size (`max_features`, 0 = never pool): a layer map [C,H,W] is
//    flattened C-major; when C*H*W > max_features it is first average-pooled
//    (adaptive average pooling, torch semantics) to side s x s with
//    s = max(1, floor(sqrt(max_features / C))) (capped at H and W), so the
//    pooled layer has C*s*s <= max_features values, unless C > max_features,
//    where s = 1 (global average pool: C values). Flat layers ([B,U],
//    "features") are never pooled. The side used is reported per layer
//    ("pooled_side"; null = not pooled).
//  * Images go through the extract job's `normalize` (ExtraAnalysisInput::
//    preprocess) at ExtraAnalysisInput::image_size, in batches of batch_size;
//    activations are kept as float32 on the CPU, the fits run in float64 on
//    the job's device.
//  * Image subsets (`pca.images`, `linear_probe.train_images/test_images`):
//    a seeded random choice (`seed`; SeededSubset) of that many rows of the
//    split, kept in ascending index order; 0 or more than the split holds =
//    the whole split.
//
// encoding (neural data; every path key: an absolute path on the worker, or
// a path relative to the job's inputs folder, inputs/<stage id>/<artifact>;
// a relative path that leaves that folder ("../x") is InvalidArgument):
//    responses: .npy [N, units] (or [N]) float/int, row i = stimulus i. Required.
//    images: folder of stimuli: every .png/.jpg/.jpeg file under it
//            (recursively), row i = the i-th file in byte-wise order of its
//            path relative to the folder ("/" separators).
//    stimuli_npy: .npy of stimuli [N,H,W] (gray), [N,H,W,3] or [N,3,H,W];
//            uint8 0-255, or float 0-1 (values outside [-1e-3, 1+1e-3] are
//            InvalidArgument). Exactly one of images / stimuli_npy.
//    ceiling: .npy per-unit noise ceiling [units] (or one value for all), in
//            Pearson-r units: the normalised score of a unit is r / ceiling
//            (units with ceiling <= 0 or non-finite are left out).
//    test_indices: .npy int [m] of test rows (a fixed split, as the
//            Majaj-Hong/NSD id files); overrides folds/train_fraction.
//    layers: [] (= every layer), max_features: 20000,
//    alphas: {log10_min: -10, log10_max: 9, count: 20} (logspace; the
//            reference's 20 penalties), alpha_score: pearson | mse,
//    folds: 0 -> one seeded random split, train_fraction of the rows for
//            training; k >= 2 -> k seeded folds, each row tested once,
//    train_fraction: 0.8, bootstrap: 1000 (resamples; 0 = none),
//    bootstrap_axis: units | stimuli, seed: 0.
//  Per layer and split: alpha chosen by exact LOO on the training rows
//  (RidgeLooSelect), ridge refit on all training rows, Pearson r per unit on
//  the test rows; with folds, a unit's r is the mean over folds. Median and
//  mean over units are reported; the bootstrap resamples the held-out rows
//  (all rows' out-of-fold predictions with folds).
//  Files: encoding/encoding.json, encoding/<layer>_r.npy (float64 [units]),
//  encoding/<layer>_r_normalized.npy with a ceiling.
//  Errors: missing file -> NotFound naming the key and path; unreadable or
//  truncated .npy -> DataLoss naming the key and path; row counts that
//  disagree -> InvalidArgument naming both counts.
//
// pca: layers: [] (= every layer), images: 1000, split: test | train (of the
//    job's `data`), seed: 0, max_features: 20000, spectrum_components: 100
//    (eigenvalues listed in the JSON), fit_min_rank: 10, fit_max_rank: 500
//    (power-law fit range, 1-based ranks, clipped to the positive spectrum).
//  Per layer: eigenvalues of the activation covariance (divisor n - 1),
//  effective dimensionality = participation ratio (sum l)^2 / sum l^2,
//  cumulative explained variance, and the power-law exponent alpha of
//  l_k ~ k^-alpha (least squares of log10 l on log10 k over the fit range).
//  Files: pca/pca.json, pca/<layer>_eigenvalues.npy (float64, all),
//  pca/spectrum.png (log-log, variance ratio per rank, one line per layer),
//  pca/cumulative.png (cumulative explained variance).
//
// linear_probe: layers: [features], train_images: 5000, test_images: 1000,
//    seed: 0, l2: 1e-4, max_iter: 200, standardize: true, pca_components: 0
//    (> 0: project on that many PCs of the training features first, as the
//    reference's Places protocol does with 1000), max_features: 20000.
//  Multinomial logistic regression (science::LinearProbe) on the frozen
//  features of the data's train split, evaluated on its test split.
//  Files: linear_probe/linear_probe.json, linear_probe/<layer>_confusion.npy
//  (int64 [C, C], rows = true class).
#ifndef TOPOLAB_WORKER_JOBS_EXTRACT_ENCODING_ANALYSES_H_
#define TOPOLAB_WORKER_JOBS_EXTRACT_ENCODING_ANALYSES_H_

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/extract/extra_analysis.h"

namespace topolab::worker {

absl::StatusOr<nlohmann::json> RunEncodingAnalysis(const ExtraAnalysisInput& in);
absl::StatusOr<nlohmann::json> RunPcaAnalysis(const ExtraAnalysisInput& in);
absl::StatusOr<nlohmann::json> RunLinearProbeAnalysis(const ExtraAnalysisInput& in);

// The pooled side s of a [c, h, w] map under `max_features` (see the file
// comment); 0 = not pooled (fits, or max_features <= 0).
int64_t PooledSide(int64_t c, int64_t h, int64_t w, int64_t max_features);

// The image subset rule: `want` of [0, n) drawn by a randperm from a CPU
// generator seeded with `seed`, returned ascending; want <= 0 or >= n gives
// every index. linear_probe's test subset uses seed + 1.
std::vector<int64_t> SeededSubset(int64_t n, int64_t want, uint64_t seed);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_EXTRACT_ENCODING_ANALYSES_H_
