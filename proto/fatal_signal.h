// Last words of a crashing process. A daemon that dies from SIGSEGV/SIGBUS/
// SIGFPE/SIGILL/SIGABRT while running in the background otherwise leaves no
// trace in its log: the shell that started it says nothing, and the only
// symptom is a worker the scheduler marks dead. With the handler installed
// the process writes
//   <program>: fatal signal SIGSEGV (pid 1234); backtrace:
//   <one frame per line>
// to stderr, then dies of the same signal (exit status and core dump
// unchanged).
#ifndef TOPOLAB_PROTO_FATAL_SIGNAL_H_
#define TOPOLAB_PROTO_FATAL_SIGNAL_H_

namespace topolab {

// Installs the handler for the process (the calling thread gets an alternate
// signal stack, so a stack overflow there is reported too). `program` must outlive the process (a
// string literal). Call once, early in main().
void InstallFatalSignalHandler(const char* program);

}  // namespace topolab

#endif  // TOPOLAB_PROTO_FATAL_SIGNAL_H_
