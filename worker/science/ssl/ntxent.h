// SimCLR's NT-Xent (normalised temperature-scaled cross entropy) loss over
// two augmented views of the same images (spec tdann.md §5).
//
// With z = [z1; z2] (2B rows, each L2-normalised) and s_ij = z_i·z_j / τ, the
// loss of row i is −log( exp(s_i,p(i)) / Σ_{k≠i} exp(s_ik) ), where p(i) is
// the other view of the same image (i ± B); NT-Xent is the mean over all 2B
// rows. Negatives are all 2B − 2 other views in the batch.
//
// Pure function, thread-safe; differentiable in z1 and z2.
#ifndef TOPOLAB_WORKER_SCIENCE_SSL_NTXENT_H_
#define TOPOLAB_WORKER_SCIENCE_SSL_NTXENT_H_

#include <ATen/ATen.h>

namespace topolab::science {

struct NtXentOptions {
  double temperature = 0.1;   // OFFICIAL 0.1 (REPRO 0.5)
  bool normalize = true;      // L2-normalise z1, z2 first (no-op if already unit norm)
};

// REQUIRES: z1 and z2 are [B, d] floating point with B >= 1 on one device;
// temperature > 0. Returns a 0-dim tensor.
at::Tensor NtXentLoss(const at::Tensor& z1, const at::Tensor& z2,
                      const NtXentOptions& options = NtXentOptions());

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_SSL_NTXENT_H_
