// `kind: sleep` — a trivial job for tests and latency benchmarks.
// Owner after the engine landed: the daemon engineer.
#include "proto/config/schema.h"

namespace topolab::config {

KindSchema SleepSchema() {
  KindSchema k;
  k.kind = "sleep";
  k.doc = "sleep, then succeed (or fail): for tests and benchmarks";
  k.fields = {
      Double("seconds").Default(1.0).Range(0, 86400).Doc("how long to sleep"),
      Bool("fail").Default(false).Doc("fail instead of succeeding"),
  };
  return k;
}

}  // namespace topolab::config
