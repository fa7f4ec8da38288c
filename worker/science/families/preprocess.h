// Input conventions of the families. The VisionModel contract feeds every
// model ImageNet-normalised images ((x - mean) / std, the train/extract
// jobs' NormalizeImageNet); each family's own preprocessing (All-TNN: [-1,1];
// V1 ResNets: mean 0.5 / std 0.5; expansion: ImageNet or raw [0,1]) starts
// from [0,1] images, so Forward() first undoes the ImageNet normalisation and
// ForwardUnit() takes [0,1] images directly (stimuli, tests).
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_PREPROCESS_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_PREPROCESS_H_

#include <ATen/ATen.h>

namespace topolab::science {

// x * std + mean with the ImageNet statistics (inverse of NormalizeImageNet).
inline at::Tensor ImageNetToUnit(const at::Tensor& x) {
  at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, x.options()).view({1, 3, 1, 1});
  at::Tensor stdv = at::tensor({0.229, 0.224, 0.225}, x.options()).view({1, 3, 1, 1});
  return x * stdv + mean;
}

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_PREPROCESS_H_
