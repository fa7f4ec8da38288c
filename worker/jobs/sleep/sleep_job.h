// The `sleep` job kind: waits, reports, checkpoints, and can be told to fail.
// It exercises every part of the job protocol without LibTorch, so the
// daemon, the scheduler's latency benchmark and the integration tests can
// use it.
//
// Spec keys (defaults are filled by proto/config/schema_sleep.cc; the same
// defaults apply when a key is absent):
//   seconds  (number >= 0, default 1)   total time to sleep
//   steps    (integer >= 1, default 10) progress/metrics/checkpoint steps
//   fail     (bool, default false)      fail after sleeping
//   message  (string)                   failure message when `fail` is true
//
// Behaviour: sleeps `seconds` in `steps` equal steps, each in slices of at
// most 20 ms so a cancel is honoured promptly. After every step it reports
// progress and the metric `step`, writes `checkpoints/sleep_state.json`
// ({"step": k}) and announces it. A retry resumes at the step stored in
// `resume_dir/checkpoints/sleep_state.json` and logs
// "resumed from step k". At the end it writes `result.json`
// ({"steps": n, "resumed_from": k, "attempt": a}).
#ifndef TOPOLAB_WORKER_JOBS_SLEEP_SLEEP_JOB_H_
#define TOPOLAB_WORKER_JOBS_SLEEP_SLEEP_JOB_H_

#include <memory>

#include "worker/jobs/job.h"

namespace topolab::worker {

std::unique_ptr<Job> MakeSleepJob();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_SLEEP_SLEEP_JOB_H_
