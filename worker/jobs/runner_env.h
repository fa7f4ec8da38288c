// The environment contract between the daemon and its `run-job` children
// (header-only, so the daemon library needs no LibTorch to use it).
#ifndef TOPOLAB_WORKER_JOBS_RUNNER_ENV_H_
#define TOPOLAB_WORKER_JOBS_RUNNER_ENV_H_

namespace topolab::worker {

// Set by the daemon to its pid. A `run-job` process that sees it asks the
// kernel for SIGTERM when that parent dies (prctl PR_SET_PDEATHSIG), which
// cancels the job: an orphaned job must not keep a GPU busy.
inline constexpr char kParentPidEnv[] = "TOPOLAB_WORKER_PARENT_PID";

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_RUNNER_ENV_H_
