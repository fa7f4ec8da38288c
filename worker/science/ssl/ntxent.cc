// NT-Xent over two views (SimCLR).
#include "worker/science/ssl/ntxent.h"

namespace topolab::science {

at::Tensor NtXentLoss(const at::Tensor& z1, const at::Tensor& z2, const NtXentOptions& options) {
  TORCH_CHECK(z1.dim() == 2 && z1.sizes() == z2.sizes() && z1.size(0) >= 1,
              "NtXentLoss: z1 and z2 must both be [B, d] with B >= 1");
  TORCH_CHECK(options.temperature > 0, "NtXentLoss: temperature must be > 0");
  const int64_t b = z1.size(0);
  at::Tensor z = at::cat({z1, z2}, 0);
  if (z.scalar_type() == at::kHalf || z.scalar_type() == at::kBFloat16) z = z.to(at::kFloat);
  if (options.normalize) z = z / z.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  at::Tensor sim = z.matmul(z.t()) / options.temperature;  // [2B, 2B]
  at::Tensor self = at::eye(2 * b, at::TensorOptions().dtype(at::kBool).device(z.device()));
  at::Tensor logits = sim.masked_fill(self, -std::numeric_limits<double>::infinity());
  // Row i's positive is the other view of image i: i + B for the first half,
  // i − B for the second.
  at::Tensor idx = at::arange(2 * b, at::TensorOptions().dtype(at::kLong).device(z.device()));
  at::Tensor positive = (idx + b).remainder(2 * b);
  at::Tensor pos_logit = sim.gather(1, positive.unsqueeze(1)).squeeze(1);
  return (at::logsumexp(logits, {1}) - pos_logit).mean();
}

}  // namespace topolab::science
