// NumPy .npy files (format 1.0/2.0, little-endian, C order): how positions,
// activations, neighbourhoods and per-unit analysis arrays leave topolab.
//
// Supported dtypes: float16/32/64, int8/16/32/64, uint8, bool.
// All functions throw std::runtime_error naming the path on failure (they are
// called from jobs, whose runner turns exceptions into a failed job).
#ifndef TOPOLAB_WORKER_SCIENCE_IO_NPY_H_
#define TOPOLAB_WORKER_SCIENCE_IO_NPY_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace topolab::science {

// Reads a whole .npy file into a CPU tensor of the matching dtype.
at::Tensor ReadNpy(const std::string& path);

// Writes `tensor` (any device; made contiguous on CPU) as .npy.
void WriteNpy(const std::string& path, const at::Tensor& tensor);

// Writes a .npy file whose first dimension grows as rows are appended, so a
// job can stream activations batch by batch with flat memory. The header
// reserves room for any row count and is rewritten by Close().
//
//   NpyStreamWriter w(path, at::kHalf, {units});
//   for (batch...) w.Append(batch);   // [b, units], any dtype: converted
//   w.Close();
//
// Not thread-safe. The destructor closes if Close() was not called.
class NpyStreamWriter {
 public:
  NpyStreamWriter(const std::string& path, at::ScalarType dtype, std::vector<int64_t> row_shape);
  ~NpyStreamWriter();
  NpyStreamWriter(const NpyStreamWriter&) = delete;
  NpyStreamWriter& operator=(const NpyStreamWriter&) = delete;

  // REQUIRES: rows.sizes() == [n, row_shape...].
  void Append(const at::Tensor& rows);
  int64_t rows() const { return rows_; }
  void Close();

 private:
  std::string path_;
  at::ScalarType dtype_;
  std::vector<int64_t> row_shape_;
  std::FILE* file_ = nullptr;
  int64_t rows_ = 0;
  size_t header_size_ = 0;
};

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_IO_NPY_H_
