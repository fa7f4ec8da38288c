// SwapOpt inner loops. Built with -O3 and reassociation (see CMakeLists.txt)
// so the reductions vectorise; target_clones picks AVX-512/AVX2 at load time.
// Results are deterministic on a given CPU; different ISAs may round the
// last bits differently.
#include "worker/science/tdann/swapopt_kernels.h"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TOPOLAB_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TOPOLAB_MULTIVERSION
#endif

namespace topolab::science::kernels {

TOPOLAB_MULTIVERSION
void GramMatrix(const float* z, int64_t n, int64_t len, float* r) {
  // Four rows of the left operand per pass: each load of row b feeds four
  // dot products.
  for (int64_t a = 0; a < n; a += 4) {
    const int64_t rows = n - a < 4 ? n - a : 4;
    const float* z0 = z + a * len;
    const float* z1 = rows > 1 ? z0 + len : z0;
    const float* z2 = rows > 2 ? z0 + 2 * len : z0;
    const float* z3 = rows > 3 ? z0 + 3 * len : z0;
    for (int64_t b = a; b < n; ++b) {
      const float* zb = z + b * len;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t k = 0; k < len; ++k) {
        const float v = zb[k];
        s0 += z0[k] * v;
        s1 += z1[k] * v;
        s2 += z2[k] * v;
        s3 += z3[k] * v;
      }
      const float s[4] = {s0, s1, s2, s3};
      for (int64_t i = 0; i < rows; ++i) {
        r[(a + i) * n + b] = s[i];
        r[b * n + (a + i)] = s[i];
      }
    }
  }
}

TOPOLAB_MULTIVERSION
SwapSums ComputeSwapSums(const float* qx, const float* qy, int64_t n, int64_t a, int64_t b,
                         const float* ra, const float* rb) {
  const double ax = qx[a], ay = qy[a], bx = qx[b], by = qy[b];
  double rd = 0, d = 0, dd = 0, delta = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double xj = qx[j], yj = qy[j];
    const double fa = 1.0 / (std::sqrt((ax - xj) * (ax - xj) + (ay - yj) * (ay - yj)) + 1.0);
    const double fb = 1.0 / (std::sqrt((bx - xj) * (bx - xj) + (by - yj) * (by - yj)) + 1.0);
    const double raj = ra[j], rbj = rb[j];
    rd += raj * fa + rbj * fb;
    d += fa + fb;
    dd += fa * fa + fb * fb;
    delta += (raj - rbj) * (fb - fa);
  }
  // Remove the j = a and j = b terms from delta: those pairs keep their
  // distance under the exchange.
  const double fab = 1.0 / (std::sqrt((ax - bx) * (ax - bx) + (ay - by) * (ay - by)) + 1.0);
  delta -= (static_cast<double>(ra[a]) - rb[a]) * (fab - 1.0);
  delta -= (static_cast<double>(ra[b]) - rb[b]) * (1.0 - fab);
  return SwapSums{rd, d, dd, delta};
}

TOPOLAB_MULTIVERSION
WindowSums ComputeWindowSums(const float* qx, const float* qy, int64_t n, const float* r) {
  WindowSums s;
  for (int64_t i = 1; i < n; ++i) {
    const double xi = qx[i], yi = qy[i];
    const float* ri = r + i * n;
    double sr = 0, srr = 0, sd = 0, sdd = 0, srd = 0;
    for (int64_t j = 0; j < i; ++j) {
      const double dx = xi - qx[j], dy = yi - qy[j];
      const double f = 1.0 / (std::sqrt(dx * dx + dy * dy) + 1.0);
      const double rij = ri[j];
      sr += rij;
      srr += rij * rij;
      sd += f;
      sdd += f * f;
      srd += rij * f;
    }
    s.r += sr;
    s.rr += srr;
    s.d += sd;
    s.dd += sdd;
    s.rd += srd;
  }
  s.pairs = n * (n - 1) / 2;
  return s;
}

}  // namespace topolab::science::kernels
