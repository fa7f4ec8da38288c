// `kind: sleep` — a trivial job for tests and latency benchmarks
// (worker/jobs/sleep/sleep_job.h describes what it does with these keys).
// Owner: the daemon engineer.
#include "proto/config/schema.h"

namespace topolab::config {

KindSchema SleepSchema() {
  KindSchema k;
  k.kind = "sleep";
  k.doc = "sleep, then succeed (or fail): for tests and benchmarks; checkpoints and resumes";
  k.fields = {
      Double("seconds").Default(1.0).Range(0, 86400).Doc("how long to sleep"),
      Int("steps").Default(10).Range(1, 100000)
          .Doc("progress/metrics/checkpoint steps the sleep is divided into"),
      Bool("fail").Default(false).Doc("fail instead of succeeding"),
      String("message").Default("").MaxLength(1024).Doc("failure message when fail is true"),
  };
  return k;
}

}  // namespace topolab::config
