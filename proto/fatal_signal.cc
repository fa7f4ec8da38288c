// InstallFatalSignalHandler (fatal_signal.h). The handler uses only
// async-signal-safe calls: write(2), backtrace_symbols_fd (glibc documents it
// as not calling malloc; backtrace() itself is primed once at install time
// so libgcc is loaded before any crash), signal(2) and raise(3).
#include "proto/fatal_signal.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <cstring>

namespace topolab {
namespace {

const char* g_program = "topolab";

void WriteStr(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

void OnFatalSignal(int sig) {
  char pid[24];
  int len = 0;
  char digits[24];
  for (long v = static_cast<long>(getpid()); v > 0 && len < 20; v /= 10) digits[len++] = static_cast<char>('0' + v % 10);
  for (int i = 0; i < len; ++i) pid[i] = digits[len - 1 - i];
  pid[len] = '\0';
  WriteStr(g_program);
  WriteStr(": fatal signal ");
  WriteStr(SignalName(sig));
  WriteStr(" (pid ");
  WriteStr(pid);
  WriteStr("); backtrace:\n");
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  // SA_RESETHAND restored the default action: die of the same signal.
  raise(sig);
}

}  // namespace

void InstallFatalSignalHandler(const char* program) {
  g_program = program;
  void* prime[1];
  (void)backtrace(prime, 1);
  static constexpr size_t kAltStack = 64 * 1024;
  stack_t ss{};
  ss.ss_sp = std::malloc(kAltStack);  // lives as long as the process
  ss.ss_size = kAltStack;
  if (ss.ss_sp != nullptr) sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnFatalSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
}

}  // namespace topolab
