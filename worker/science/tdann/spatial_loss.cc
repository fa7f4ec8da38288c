// Spatial losses SL_Rel / SL_Abs (spec §4).
#include "worker/science/tdann/spatial_loss.h"

#include <ATen/core/grad_mode.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace topolab::science {

absl::StatusOr<SpatialLossType> ParseSpatialLossType(std::string_view name) {
  if (name == "rel") return SpatialLossType::kRelative;
  if (name == "abs") return SpatialLossType::kAbsolute;
  return absl::InvalidArgumentError(
      absl::StrCat("spatial loss: must be \"rel\" or \"abs\", got \"", std::string(name), "\""));
}

absl::StatusOr<RelativeForm> ParseRelativeForm(std::string_view name) {
  if (name == "half") return RelativeForm::kHalf;
  if (name == "full") return RelativeForm::kFull;
  return absl::InvalidArgumentError(
      absl::StrCat("rel_form: must be \"half\" or \"full\", got \"", std::string(name), "\""));
}

namespace {

// Half precision loses too much in the correlation sums.
at::Tensor Widen(const at::Tensor& t) {
  return (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) ? t.to(at::kFloat)
                                                                          : t;
}

}  // namespace

at::Tensor ResponseCorrelation(const at::Tensor& responses) {
  TORCH_CHECK(responses.dim() == 2 && responses.size(0) >= 1 &&
                  at::isFloatingType(responses.scalar_type()),
              "ResponseCorrelation: responses must be [B, K] floating point");
  at::Tensor x = Widen(responses);
  const int64_t b = x.size(0);
  at::Tensor mean = x.mean(0, /*keepdim=*/true);
  at::Tensor centred = x - mean;
  at::Tensor var = centred.pow(2).mean(0, /*keepdim=*/true);
  // Decide "constant" without gradient; replace the variance before the sqrt
  // so no inf·0 = NaN reaches the gradient of sqrt(0).
  at::Tensor constant;
  {
    at::NoGradGuard no_grad;
    at::Tensor sd = var.sqrt();
    constant = sd <= mean.abs().clamp_min(1.0) * 1e-7;
  }
  at::Tensor safe_var = at::where(constant, at::ones_like(var), var);
  at::Tensor z = at::where(constant, at::zeros_like(centred), centred / safe_var.sqrt());
  at::Tensor r = z.t().matmul(z) / static_cast<double>(b);
  return r.clamp(-1.0, 1.0);
}

at::Tensor DistanceSimilarity(const at::Tensor& positions) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 2,
              "DistanceSimilarity: positions must be [K, 2]");
  at::NoGradGuard no_grad;
  at::Tensor p = positions.detach().to(at::kDouble);
  at::Tensor diff = p.unsqueeze(1) - p.unsqueeze(0);  // [K, K, 2]
  at::Tensor d = diff.pow(2).sum(-1).sqrt();
  return (1.0 / (d + 1.0));
}

at::Tensor LowerTriangle(const at::Tensor& square) {
  TORCH_CHECK(square.dim() == 2 && square.size(0) == square.size(1),
              "LowerTriangle: matrix must be square");
  const int64_t k = square.size(0);
  at::Tensor idx = at::tril_indices(k, k, /*offset=*/-1,
                                    at::TensorOptions().dtype(at::kLong).device(square.device()));
  return square.reshape({-1}).index_select(0, idx[0] * k + idx[1]);
}

at::Tensor VectorCorrelation(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 1 && a.sizes() == b.sizes(), "VectorCorrelation: equal 1-D vectors");
  at::Tensor ac = a - a.mean();
  at::Tensor bc = b - b.mean();
  at::Tensor num = (ac * bc).sum();
  at::Tensor den2 = ac.pow(2).sum() * bc.pow(2).sum();
  // When either vector is constant the numerator is exactly 0 as well: 0/tiny.
  return num / den2.clamp_min(1e-30).sqrt();
}

at::Tensor SpatialLossRel(const at::Tensor& responses, const at::Tensor& positions,
                          RelativeForm form) {
  TORCH_CHECK(responses.dim() == 2 && responses.size(1) >= 2,
              "SpatialLossRel: need [B, K] responses with K >= 2");
  TORCH_CHECK(positions.size(0) == responses.size(1),
              "SpatialLossRel: positions rows must equal response columns");
  at::Tensor r = LowerTriangle(ResponseCorrelation(responses));
  at::Tensor d = LowerTriangle(DistanceSimilarity(positions.to(responses.device())))
                     .to(r.scalar_type());
  at::Tensor corr = VectorCorrelation(r, d);
  at::Tensor loss = 1.0 - corr;
  return form == RelativeForm::kHalf ? loss / 2.0 : loss;
}

at::Tensor SpatialLossAbs(const at::Tensor& responses, const at::Tensor& positions) {
  TORCH_CHECK(responses.dim() == 2 && responses.size(1) >= 2,
              "SpatialLossAbs: need [B, K] responses with K >= 2");
  TORCH_CHECK(positions.size(0) == responses.size(1),
              "SpatialLossAbs: positions rows must equal response columns");
  at::Tensor r = LowerTriangle(ResponseCorrelation(responses));
  at::Tensor d = LowerTriangle(DistanceSimilarity(positions.to(responses.device())))
                     .to(r.scalar_type());
  return (r - d).abs().mean();
}

at::Tensor SpatialLoss(const at::Tensor& responses, const at::Tensor& positions,
                       const SpatialLossOptions& options) {
  return options.type == SpatialLossType::kRelative
             ? SpatialLossRel(responses, positions, options.rel_form)
             : SpatialLossAbs(responses, positions);
}

at::Tensor LayerSpatialLoss(const at::Tensor& block_output, const at::Tensor& positions,
                            const at::Tensor& pool, int64_t count, at::Generator gen,
                            const SpatialLossOptions& options) {
  TORCH_CHECK(pool.dim() == 2 && pool.size(0) >= 1 && pool.size(1) >= 2,
              "LayerSpatialLoss: empty neighbourhood pool");
  TORCH_CHECK(count >= 1, "LayerSpatialLoss: count must be >= 1");
  at::Tensor flat = block_output.flatten(1);
  TORCH_CHECK(positions.dim() == 2 && positions.size(0) == flat.size(1),
              "LayerSpatialLoss: positions has ", positions.size(0), " rows but the layer has ",
              flat.size(1), " units");
  at::Tensor picks = at::randint(pool.size(0), {count}, gen, at::kLong);
  at::Tensor total;
  for (int64_t i = 0; i < count; ++i) {
    at::Tensor idx = pool[picks[i].item<int64_t>()].to(at::kLong);
    at::Tensor loss = SpatialLoss(flat.index_select(1, idx.to(flat.device())),
                                  positions.index_select(0, idx.to(positions.device())), options);
    total = total.defined() ? total + loss : loss;
  }
  return count == 1 ? total : total / static_cast<double>(count);
}

}  // namespace topolab::science
