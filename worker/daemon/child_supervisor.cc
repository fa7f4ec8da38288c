// Child process supervision; see child_supervisor.h.
#include "worker/daemon/child_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

extern char** environ;

namespace topolab::worker {
namespace {

using Clock = std::chrono::steady_clock;

std::string SignalName(int signo) {
  switch (signo) {
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    default: return "signal " + std::to_string(signo);
  }
}

ExitInfo FromWaitStatus(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exited = true;
    info.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  }
  return info;
}

}  // namespace

std::string DescribeExit(const ExitInfo& exit) {
  if (exit.exited) return "exited with code " + std::to_string(exit.code);
  std::string text = "killed by signal " + std::to_string(exit.signal) + " (" + SignalName(exit.signal);
  // The kernel's OOM killer sends SIGKILL; so does our own grace-period
  // kill, which the caller reports separately.
  if (exit.signal == SIGKILL) text += "; possibly out of memory";
  return text + ")";
}

ChildSupervisor::ChildSupervisor(ChildOptions options) : options_(std::move(options)) {}

ChildSupervisor::~ChildSupervisor() {
  if (pid_ > 0) {
    bool reaped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reaped = reaped_;
    }
    if (!reaped) {
      SignalGroup(SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

absl::Status ChildSupervisor::Start() {
  if (options_.argv.empty()) return absl::InvalidArgumentError("child argv is empty");
  int out_pipe[2];
  int err_pipe[2];
  // O_CLOEXEC: children spawned concurrently by other job threads must not
  // inherit our pipe ends (they would hold them open past our child's exit).
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError(std::string("pipe2: ") + std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::InternalError(std::string("pipe2: ") + std::strerror(err));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  if (!options_.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options_.working_dir.c_str());
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);  // own process group, led by the child
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  sigset_t defaults;  // the daemon ignores/handles some; the child must not inherit that
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<char*> argv;
  for (std::string& a : options_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) envp.push_back(*e);
  for (std::string& e : options_.extra_env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return absl::InternalError("cannot start " + options_.argv[0] + ": " + std::strerror(rc));
  }
  pid_ = pid;
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  if (stop_requested_.load()) SignalGroup(SIGTERM);
  return absl::OkStatus();
}

void ChildSupervisor::SignalGroup(int signo) {
  std::lock_guard<std::mutex> lock(mu_);
  // While the child is unreaped (even as a zombie) its pid, and so its
  // process group id, cannot be reused: signalling it is safe.
  if (pid_ > 0 && !reaped_) kill(-pid_, signo);
}

void ChildSupervisor::RequestStop() {
  if (stop_requested_.exchange(true)) return;
  SignalGroup(SIGTERM);
}

void ChildSupervisor::Kill() {
  kill_requested_.store(true);
  SignalGroup(SIGKILL);
}

ChildResult ChildSupervisor::Wait(const EventCallback& on_event, const LineCallback& on_stderr) {
  ChildResult result;
  LineSplitter out_lines;
  LineSplitter err_lines(64 * 1024);
  std::string err_tail;
  auto append_tail = [&](const char* data, size_t n) {
    err_tail.append(data, n);
    if (err_tail.size() > options_.stderr_tail_bytes) {
      err_tail.erase(0, err_tail.size() - options_.stderr_tail_bytes);
    }
  };
  auto handle_out_line = [&](const std::string& line) {
    ChildEvent e = ParseChildEventLine(line);
    if (e.type == ChildEvent::Type::kDone) {
      result.saw_done = true;
      result.done = e;
    }
    if (on_event) on_event(e);
  };

  bool exited = false;
  Clock::time_point exit_seen;
  Clock::time_point term_sent;
  bool term_seen = false;
  bool kill_sent = false;
  char buf[65536];
  while (true) {
    // Grace-period escalation, driven from this thread.
    if (stop_requested_.load() && !term_seen) {
      term_seen = true;
      term_sent = Clock::now();
    }
    if (term_seen && !kill_sent && !exited && Clock::now() - term_sent >= options_.grace) {
      kill_sent = true;
      result.killed_after_grace = true;
      SignalGroup(SIGKILL);
    }

    pollfd fds[2];
    nfds_t n = 0;
    if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
    if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
    int pr = poll(fds, n, 50);
    if (pr < 0 && errno != EINTR) break;
    for (nfds_t i = 0; pr > 0 && i < n; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      bool is_out = fds[i].fd == out_fd_;
      if (got <= 0) {  // EOF or error: this stream is finished
        if (is_out) {
          std::string rest = out_lines.Finish();
          if (!rest.empty()) handle_out_line(rest);
          close(out_fd_);
          out_fd_ = -1;
        } else {
          std::string rest = err_lines.Finish();
          if (!rest.empty() && on_stderr) on_stderr(rest);
          close(err_fd_);
          err_fd_ = -1;
        }
        continue;
      }
      if (is_out) {
        for (const std::string& line : out_lines.Feed(std::string_view(buf, got))) handle_out_line(line);
      } else {
        append_tail(buf, static_cast<size_t>(got));
        for (const std::string& line : err_lines.Feed(std::string_view(buf, got))) {
          if (on_stderr) on_stderr(line);
        }
      }
    }

    if (!exited) {
      // Look without reaping first: while the leader is a zombie its group
      // id stays reserved, so stragglers it left behind can be killed safely.
      siginfo_t info{};
      info.si_pid = 0;
      if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_) {
        exited = true;
        exit_seen = Clock::now();
      }
    }
    if (exited) {
      bool drained = out_fd_ < 0 && err_fd_ < 0;
      // Pipes held open by a straggler: give it a moment, then stop reading.
      if (drained || Clock::now() - exit_seen > std::chrono::milliseconds(500)) break;
    }
  }

  if (out_fd_ >= 0) {
    std::string rest = out_lines.Finish();
    if (!rest.empty()) handle_out_line(rest);
  }
  SignalGroup(SIGKILL);  // anything left in the group (the leader is a zombie)
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reaped_ = true;
  }
  if (w == pid_) result.exit = FromWaitStatus(status);
  result.stderr_tail = std::move(err_tail);
  result.stop_requested = stop_requested_.load() || kill_requested_.load();
  return result;
}

}  // namespace topolab::worker
