// PNG output for maps and plots (libpng).
#ifndef TOPOLAB_WORKER_SCIENCE_IO_PNG_H_
#define TOPOLAB_WORKER_SCIENCE_IO_PNG_H_

#include <string>

#include <ATen/ATen.h>

namespace topolab::science {

// Writes an 8-bit RGB image. REQUIRES: rgb is [H, W, 3] uint8 (any device).
// Throws std::runtime_error naming the path on failure.
void WritePngRgb(const std::string& path, const at::Tensor& rgb);

// Reads an 8-bit RGB(A)/gray PNG back as [H, W, 3] uint8 (for tests and tools).
at::Tensor ReadPngRgb(const std::string& path);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_IO_PNG_H_
