// Internal helpers of topolab_science_tdann (no torch): a small seedable RNG
// whose stream is fixed by its seed on every platform (std:: distributions
// are implementation-defined), and a uniform grid for "which points lie in
// this closed square" queries over a fixed point set.
#ifndef TOPOLAB_WORKER_SCIENCE_TDANN_RNG_H_
#define TOPOLAB_WORKER_SCIENCE_TDANN_RNG_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace topolab::science {

// SplitMix64 (Vigna): 64-bit state, full period, good enough for sampling.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n). REQUIRES: n > 0. (Lemire's multiply-shift;
  // the bias for n << 2^64 is negligible.)
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

// Mixes a base seed and a stream index into an independent seed.
inline uint64_t MixSeed(uint64_t seed, uint64_t stream) {
  SplitMix64 m(seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL));
  m.Next();
  return m.Next();
}

// Buckets a fixed set of 2-D points (x, y interleaved) into square cells so a
// closed-square query touches only the cells it overlaps. Copies the points.
class SquareGrid {
 public:
  SquareGrid(const double* xy, int64_t n, double min_x, double min_y, double cell)
      : xy_(xy, xy + 2 * n), min_x_(min_x), min_y_(min_y) {
    double max_x = min_x, max_y = min_y;
    for (int64_t i = 0; i < n; ++i) {
      max_x = std::max(max_x, xy[2 * i]);
      max_y = std::max(max_y, xy[2 * i + 1]);
    }
    // At most 2048 cells per axis: beyond that, larger cells are cheaper.
    cell_ = std::max({cell, (max_x - min_x) / 2048.0, (max_y - min_y) / 2048.0, 1e-12});
    nx_ = static_cast<int64_t>((max_x - min_x) / cell_) + 1;
    ny_ = static_cast<int64_t>((max_y - min_y) / cell_) + 1;
    start_.assign(nx_ * ny_ + 1, 0);
    std::vector<int64_t> cell_of(n);
    for (int64_t i = 0; i < n; ++i) {
      cell_of[i] = CellY(xy[2 * i + 1]) * nx_ + CellX(xy[2 * i]);
      ++start_[cell_of[i] + 1];
    }
    for (size_t c = 1; c < start_.size(); ++c) start_[c] += start_[c - 1];
    items_.resize(n);
    std::vector<int64_t> fill(start_.begin(), start_.end() - 1);
    for (int64_t i = 0; i < n; ++i) items_[fill[cell_of[i]]++] = i;
  }

  // Appends the indices of points with x0 <= x <= x0 + w and y0 <= y <= y0 + w
  // (ascending within each cell; cells in row-major order).
  void Query(double x0, double y0, double w, std::vector<int64_t>* out) const {
    const double x1 = x0 + w, y1 = y0 + w;
    const int64_t cx0 = CellX(x0), cx1 = CellX(x1), cy0 = CellY(y0), cy1 = CellY(y1);
    for (int64_t cy = cy0; cy <= cy1; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        const int64_t c = cy * nx_ + cx;
        for (int64_t k = start_[c]; k < start_[c + 1]; ++k) {
          const int64_t i = items_[k];
          const double x = xy_[2 * i], y = xy_[2 * i + 1];
          if (x >= x0 && x <= x1 && y >= y0 && y <= y1) out->push_back(i);
        }
      }
    }
  }

 private:
  int64_t CellX(double x) const { return Clamp((x - min_x_) / cell_, nx_); }
  int64_t CellY(double y) const { return Clamp((y - min_y_) / cell_, ny_); }
  static int64_t Clamp(double v, int64_t n) {
    if (!(v > 0)) return 0;
    return std::min<int64_t>(static_cast<int64_t>(v), n - 1);
  }

  std::vector<double> xy_;
  double min_x_, min_y_, cell_;
  int64_t nx_ = 1, ny_ = 1;
  std::vector<int64_t> start_, items_;
};

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_TDANN_RNG_H_
