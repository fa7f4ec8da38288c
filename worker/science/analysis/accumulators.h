// Streaming accumulators: per-unit running sums over stimulus batches, so an
// analysis over any number of stimuli needs memory proportional to
// (conditions x units), never (stimuli x units). Sums are float64 whatever
// the response dtype (float16 activations included), so the result does not
// depend on how the stimuli were batched beyond float64 round-off.
//
// Feeding every batch of a stimulus set through Add() and then reading
// Means()/Variances() gives exactly what the batch formulas give on the whole
// response matrix (tests/worker/science/analysis check this).
//
// Thread-compatible.
#ifndef TOPOLAB_WORKER_SCIENCE_ANALYSIS_ACCUMULATORS_H_
#define TOPOLAB_WORKER_SCIENCE_ANALYSIS_ACCUMULATORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace topolab::science {

// Per-condition sums (and optionally sums of squares) of unit responses.
class ConditionAccumulator {
 public:
  // REQUIRES: num_conditions >= 1, num_units >= 1.
  ConditionAccumulator(int64_t num_conditions, int64_t num_units, bool second_moment = false);

  // responses [B, num_units] (or [B, ...] flattened C-major), any floating
  // dtype, any device (moved to CPU); conditions [B] integer in
  // [0, num_conditions). Throws std::invalid_argument on a shape mismatch or
  // an out-of-range condition.
  void Add(const at::Tensor& responses, const at::Tensor& conditions);

  int64_t num_conditions() const { return num_conditions_; }
  int64_t num_units() const { return num_units_; }
  // Stimuli seen per condition, float64 [K].
  const at::Tensor& counts() const { return counts_; }
  // Running sums, float64 [K, U]; sq_sums() is undefined unless second_moment.
  const at::Tensor& sums() const { return sums_; }
  const at::Tensor& sq_sums() const { return sq_sums_; }

  // Per-condition mean, float64 [K, U] (NaN rows for unseen conditions).
  at::Tensor Means() const;
  // Mean over every stimulus seen, float64 [U].
  at::Tensor GrandMean() const;
  // Population (ddof 0) mean and variance over the union of `conditions`,
  // float64 [U] each. REQUIRES: second_moment; at least one stimulus seen in
  // the union (else both are NaN).
  void PooledMoments(const std::vector<int64_t>& conditions, at::Tensor* mean,
                     at::Tensor* variance) const;

 private:
  int64_t num_conditions_;
  int64_t num_units_;
  at::Tensor counts_;
  at::Tensor sums_;
  at::Tensor sq_sums_;
};

// Everything the V1 analyses need from the 640 sine gratings, accumulated
// batch by batch: marginal means per orientation, spatial frequency, colour,
// and per (orientation, phase).
struct GratingTuning {
  at::Tensor orientation;        // [U, 8]   mean response per orientation (80 images each)
  at::Tensor frequency;          // [U, 8]   mean per spatial frequency
  at::Tensor colour;             // [U, 2]   mean per colour type (bw, red_cyan)
  at::Tensor orientation_phase;  // [U, 8, 5] mean per (orientation, phase)
  at::Tensor mean;               // [U]      mean over all gratings
};

class GratingAccumulator {
 public:
  explicit GratingAccumulator(int64_t num_units);
  // responses [B, U...] for the grating rows `rows` [B] (row indices as in
  // stimuli.h, so batches may arrive in any order or be repeated).
  void Add(const at::Tensor& responses, const at::Tensor& rows);
  // Convenience: rows start, start+1, ..., start+B-1.
  void AddRange(const at::Tensor& responses, int64_t start);
  GratingTuning Result() const;
  int64_t num_units() const { return orientation_.num_units(); }

 private:
  ConditionAccumulator orientation_, frequency_, colour_, orientation_phase_;
};

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_ANALYSIS_ACCUMULATORS_H_
