// Runs one job as a child process and watches it until it is gone.
//
// The child is started with posix_spawn in its own process group (so a
// cancel reaches everything it started), stdin from /dev/null, stdout and
// stderr on pipes. Its stdout is parsed as the child protocol
// (protocol.h); its stderr is passed on line by line and its tail kept for
// the failure message. Stopping is SIGTERM to the group, then SIGKILL after
// a grace period.
#ifndef TOPOLAB_WORKER_DAEMON_CHILD_SUPERVISOR_H_
#define TOPOLAB_WORKER_DAEMON_CHILD_SUPERVISOR_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/daemon/protocol.h"

namespace topolab::worker {

// How a child process ended.
struct ExitInfo {
  bool exited = false;  // true: exit(code); false: killed by `signal`
  int code = 0;
  int signal = 0;
};

// "exited with code 1", "killed by signal 9 (SIGKILL; possibly out of memory)",
// "killed by signal 11 (SIGSEGV)".
std::string DescribeExit(const ExitInfo& exit);

struct ChildOptions {
  std::vector<std::string> argv;          // argv[0]: path of the executable
  std::filesystem::path working_dir;      // empty: the daemon's
  std::vector<std::string> extra_env;     // "NAME=value", added to ours
  std::chrono::milliseconds grace{10000}; // SIGTERM -> SIGKILL
  size_t stderr_tail_bytes = 4096;
};

struct ChildResult {
  ExitInfo exit;
  bool saw_done = false;      // a "done" event arrived
  ChildEvent done;            // valid if saw_done
  std::string stderr_tail;    // last stderr_tail_bytes of stderr
  bool stop_requested = false;
  bool killed_after_grace = false;  // SIGKILL was needed after SIGTERM
};

// One child. Start() once, then Wait() on one thread; RequestStop() and
// Kill() may be called from any thread, before or during Wait().
class ChildSupervisor {
 public:
  using EventCallback = std::function<void(const ChildEvent&)>;
  using LineCallback = std::function<void(const std::string&)>;

  explicit ChildSupervisor(ChildOptions options);
  ~ChildSupervisor();  // kills and reaps a child that was never waited for
  ChildSupervisor(const ChildSupervisor&) = delete;
  ChildSupervisor& operator=(const ChildSupervisor&) = delete;

  // Spawns the child. Returns Internal (naming the executable and errno)
  // if that fails. REQUIRES: called once.
  absl::Status Start();
  pid_t pid() const { return pid_; }

  // Blocks until the child has exited and its pipes are drained. Calls
  // on_event for each stdout line (non-protocol lines arrive as kLog) and
  // on_stderr for each stderr line, on this thread. REQUIRES: Start() OK.
  ChildResult Wait(const EventCallback& on_event, const LineCallback& on_stderr);

  // SIGTERM to the process group now, SIGKILL once `grace` has passed.
  // Idempotent.
  void RequestStop();
  // SIGKILL to the process group now.
  void Kill();

 private:
  void SignalGroup(int signo);

  ChildOptions options_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::mutex mu_;             // guards reaped_ against signalling a reused pid
  bool reaped_ = false;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> kill_requested_{false};
};

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_CHILD_SUPERVISOR_H_
