// Hot loops of SwapOpt as plain float code (no torch): compiled at -O3 with
// reassociation allowed and cloned for AVX-512 / AVX2 / baseline x86-64 (the
// best one is chosen at load time), so the same binary runs on any worker.
// Internal to topolab_science_tdann. All functions are thread-safe (no state).
#ifndef TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_KERNELS_H_
#define TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_KERNELS_H_

#include <cstdint>

namespace topolab::science::kernels {

// r[a·n + b] = Σ_k z[a·len + k] · z[b·len + k] for all a, b < n (symmetric).
// With rows z-scored and scaled by 1/sqrt(len) this is the Pearson matrix.
void GramMatrix(const float* z, int64_t n, int64_t len, float* r);

// Sums over j < n for a candidate swap of local units a and b, where
// fa_j = 1 / (‖q_a − q_j‖ + 1), fb_j = 1 / (‖q_b − q_j‖ + 1) and ra, rb are
// rows a and b of R:
struct SwapSums {
  double rd_before;   // Σ_j ra_j·fa_j + rb_j·fb_j
  double d;           // Σ_j fa_j + fb_j
  double dd;          // Σ_j fa_j² + fb_j²
  double delta;       // Σ_{j∉{a,b}} (ra_j − rb_j)(fb_j − fa_j): change of the
                      // cross sum Σ r·d when q_a and q_b are exchanged
};
SwapSums ComputeSwapSums(const float* qx, const float* qy, int64_t n, int64_t a, int64_t b,
                         const float* ra, const float* rb);

// Sums over the strictly-lower-triangle pairs of an n-unit window:
// Σ r, Σ r², Σ d, Σ d², Σ r·d with d = 1 / (dist + 1).
struct WindowSums {
  double r = 0, rr = 0, d = 0, dd = 0, rd = 0;
  int64_t pairs = 0;
};
WindowSums ComputeWindowSums(const float* qx, const float* qy, int64_t n, const float* r);

}  // namespace topolab::science::kernels

#endif  // TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_KERNELS_H_
