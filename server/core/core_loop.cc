// CoreLoop implementation: one io_context, one thread, one timer.
#include "server/core/core_loop.h"

#include <chrono>
#include <utility>

namespace topolab::server {

CoreLoop::CoreLoop(Scheduler& scheduler, int64_t tick_ms)
    : scheduler_(scheduler),
      tick_ms_(tick_ms > 0 ? tick_ms : 20),
      work_(boost::asio::make_work_guard(io_)),
      timer_(io_) {}

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
    if (!flush_posted_ && scheduler_.pending_submits() > 0) {
      flush_posted_ = true;
      boost::asio::post(io_, [this] {
        flush_posted_ = false;
        scheduler_.FlushSubmits();
      });
    }
  });
}

void CoreLoop::LeaseJob(std::string worker_id, int64_t wait_ms, Scheduler::LeaseCallback done,
                        std::function<bool()> is_cancelled) {
  Post([this, worker_id = std::move(worker_id), wait_ms, done = std::move(done),
        is_cancelled = std::move(is_cancelled)](Scheduler& s) mutable {
    s.LeaseJob(worker_id, draining_ ? 0 : wait_ms, std::move(done), std::move(is_cancelled));
  });
}

}  // namespace topolab::server
