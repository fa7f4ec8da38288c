// Exponential backoff for calls to a scheduler that may be away (restarting,
// network cut). Deterministic when given a seed, so tests can check it.
#ifndef TOPOLAB_WORKER_DAEMON_BACKOFF_H_
#define TOPOLAB_WORKER_DAEMON_BACKOFF_H_

#include <chrono>
#include <cstdint>
#include <random>

namespace topolab::worker {

struct BackoffOptions {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
  // Each delay is scaled by a uniform factor in [1 - jitter, 1], so many
  // workers reconnecting after a scheduler restart do not arrive together.
  double jitter = 0.2;
};

// Not thread-safe.
class Backoff {
 public:
  explicit Backoff(const BackoffOptions& options = {}, uint64_t seed = 0x70701ab);
  // The delay to wait before the next attempt: initial, initial*m, ...
  // capped at max, each with jitter applied.
  std::chrono::milliseconds NextDelay();
  // Call after a success: the next delay starts at `initial` again.
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_BACKOFF_H_
