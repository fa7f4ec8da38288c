// Clock: the scheduler core's only source of time, injected so tests can
// drive lease expiry, worker liveness and long-poll deadlines without
// sleeping (STYLE.md: "inject a clock; never sleep in tests").
#ifndef TOPOLAB_SERVER_CORE_CLOCK_H_
#define TOPOLAB_SERVER_CORE_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace topolab::server {

// Milliseconds since the Unix epoch. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

// Wall-clock time (what gets persisted: created_at_ms, lease expiry, ...).
class RealClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that only moves when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t delta_ms) { now_ms_ += delta_ms; }
  void SetMs(int64_t now_ms) { now_ms_ = now_ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_CORE_CLOCK_H_
