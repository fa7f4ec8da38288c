// Exponential backoff; see backoff.h.
#include "worker/daemon/backoff.h"

#include <algorithm>
#include <cmath>

namespace topolab::worker {

Backoff::Backoff(const BackoffOptions& options, uint64_t seed) : options_(options), rng_(seed) {}

std::chrono::milliseconds Backoff::NextDelay() {
  const double initial = static_cast<double>(options_.initial.count());
  const double cap = static_cast<double>(options_.max.count());
  // Cap the exponent too, so a long outage cannot overflow the double.
  const double base =
      std::min(cap, initial * std::pow(options_.multiplier, std::min(attempt_, 60)));
  ++attempt_;
  double factor = 1.0;
  if (options_.jitter > 0) {
    std::uniform_real_distribution<double> dist(1.0 - std::min(options_.jitter, 1.0), 1.0);
    factor = dist(rng_);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(base * factor)));
}

}  // namespace topolab::worker
