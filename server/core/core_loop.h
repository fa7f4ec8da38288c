// CoreLoop: runs a Scheduler on one Boost.Asio io_context thread.
//
// The Scheduler is single-threaded; gRPC handler threads never touch it
// directly but Post() work here (Ray's ServerCallImpl posting to its
// io_service). A steady_timer calls Scheduler::Tick() every `tick_ms` to
// expire leases, mark dead workers and answer long polls at their deadline.
//
// Group commit: Submit() posts the submit and, unless one is already queued,
// a flush behind it. Every submit that reaches the loop before the flush runs
// is written by the same Store::CreateExperiments call; submits arriving
// while a flush writes are batched into the next one. Under load, commits
// are spaced at least `min_commit_interval_us` apart (a flush requested
// sooner waits on a timer), so each commit carries more experiments and the
// per-commit cost (WAL pages of every index) is shared; an idle scheduler
// commits at once. A submit is answered only after its batch is durable.
//
// Thread-safe: Post/Submit/Call may be called from any thread.
#ifndef TOPOLAB_SERVER_CORE_CORE_LOOP_H_
#define TOPOLAB_SERVER_CORE_CORE_LOOP_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/core/scheduler.h"

namespace topolab::server {

class CoreLoop {
 public:
  // `scheduler` must outlive the loop and must not be used by anyone else
  // while the loop runs.
  explicit CoreLoop(Scheduler& scheduler, int64_t tick_ms = 20,
                    int64_t min_commit_interval_us = 0);
  ~CoreLoop();  // Stop()
  CoreLoop(const CoreLoop&) = delete;
  CoreLoop& operator=(const CoreLoop&) = delete;

  // Starts the core thread and the sweep timer.
  void Start();
  // Answers every parked long poll with "no job" and makes later LeaseJob
  // calls answer at once (no parking), so a gRPC server shutdown is not held
  // up by long polls. Blocks until done.
  void Drain();
  // Writes pending submits, stops the timer and joins the thread. Work posted
  // after Stop() is never run. Idempotent.
  void Stop();

  // Runs `fn` on the core thread, in FIFO order.
  void Post(std::function<void(Scheduler&)> fn);
  // Group-committed submit (see above). `done` runs on the core thread.
  void Submit(NewExperiment experiment, Scheduler::SubmitCallback done);
  // LeaseJob that honours Drain().
  void LeaseJob(std::string worker_id, int64_t wait_ms, Scheduler::LeaseCallback done,
                std::function<bool()> is_cancelled);

  // Runs `fn` on the core thread and returns its result.
  // REQUIRES: not called on the core thread; the loop is running.
  template <typename F>
  auto Call(F fn) -> std::invoke_result_t<F, Scheduler&> {
    using R = std::invoke_result_t<F, Scheduler&>;
    auto promise = std::make_shared<std::promise<R>>();
    std::future<R> future = promise->get_future();
    Post([promise, fn = std::move(fn)](Scheduler& s) mutable {
      if constexpr (std::is_void_v<R>) {
        fn(s);
        promise->set_value();
      } else {
        promise->set_value(fn(s));
      }
    });
    return future.get();
  }

  bool OnCoreThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  void ArmTimer();
  void RequestFlush();  // core thread only
  void FlushNow();      // core thread only

  Scheduler& scheduler_;
  const int64_t tick_ms_;
  const std::chrono::microseconds min_commit_interval_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer flush_timer_;
  std::chrono::steady_clock::time_point last_flush_{};  // core thread only
  std::thread thread_;
  std::thread::id thread_id_;
  bool flush_posted_ = false;  // core thread only
  bool draining_ = false;      // core thread only
  std::atomic<bool> stopped_{false};
  bool started_ = false;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_CORE_CORE_LOOP_H_
