// CoreLoop implementation: one io_context, one thread, one timer.
#include "server/core/core_loop.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace topolab::server {

CoreLoop::CoreLoop(Scheduler& scheduler, int64_t tick_ms, int64_t min_commit_interval_us)
    : scheduler_(scheduler),
      tick_ms_(tick_ms > 0 ? tick_ms : 20),
      min_commit_interval_(std::max<int64_t>(0, min_commit_interval_us)),
      work_(boost::asio::make_work_guard(io_)),
      timer_(io_),
      flush_timer_(io_) {}

CoreLoop::~CoreLoop() { Stop(); }

void CoreLoop::Start() {
  if (started_) return;
  started_ = true;
  ArmTimer();
  thread_ = std::thread([this] { io_.run(); });
  thread_id_ = thread_.get_id();
}

void CoreLoop::ArmTimer() {
  timer_.expires_after(std::chrono::milliseconds(tick_ms_));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    scheduler_.Tick();
    ArmTimer();
  });
}

void CoreLoop::Drain() {
  if (!started_ || stopped_) return;
  Call([this](Scheduler& s) {
    draining_ = true;
    s.FlushSubmits();
    s.ReleaseParkedLeases();
  });
}

void CoreLoop::Stop() {
  if (!started_ || stopped_.exchange(true)) return;
  boost::asio::post(io_, [this] {
    scheduler_.FlushSubmits();
    timer_.cancel();
    flush_timer_.cancel();
    work_.reset();
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
}

void CoreLoop::Post(std::function<void(Scheduler&)> fn) {
  boost::asio::post(io_, [this, fn = std::move(fn)] { fn(scheduler_); });
}

void CoreLoop::Submit(NewExperiment experiment, Scheduler::SubmitCallback done) {
  boost::asio::post(io_, [this, e = std::move(experiment), done = std::move(done)]() mutable {
    scheduler_.Submit(std::move(e), std::move(done));
    if (scheduler_.pending_submits() > 0) RequestFlush();
  });
}

void CoreLoop::RequestFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  auto due = last_flush_ + min_commit_interval_;
  if (std::chrono::steady_clock::now() >= due) {
    // Behind every submit already queued: they all join this commit.
    boost::asio::post(io_, [this] { FlushNow(); });
    return;
  }
  flush_timer_.expires_at(due);
  flush_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled at Stop(), which flushes itself
    FlushNow();
  });
}

void CoreLoop::FlushNow() {
  flush_posted_ = false;
  scheduler_.FlushSubmits();
  last_flush_ = std::chrono::steady_clock::now();
}

void CoreLoop::LeaseJob(std::string worker_id, int64_t wait_ms, Scheduler::LeaseCallback done,
                        std::function<bool()> is_cancelled) {
  Post([this, worker_id = std::move(worker_id), wait_ms, done = std::move(done),
        is_cancelled = std::move(is_cancelled)](Scheduler& s) mutable {
    s.LeaseJob(worker_id, draining_ ? 0 : wait_ms, std::move(done), std::move(is_cancelled));
  });
}

}  // namespace topolab::server
