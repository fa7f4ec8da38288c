// Parsing the child protocol: the JSON-lines stream a `topolab-worker
// run-job` child writes on stdout (format in worker/jobs/runner.h).
//
// The daemon never trusts the child: a line that is not a well-formed event
// becomes a plain log line, so a job that prints to stdout (or a library
// that does) cannot break supervision.
#ifndef TOPOLAB_WORKER_DAEMON_PROTOCOL_H_
#define TOPOLAB_WORKER_DAEMON_PROTOCOL_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace topolab::worker {

struct ChildEvent {
  enum class Type { kLog, kProgress, kMetrics, kArtifact, kDone };
  Type type = Type::kLog;
  std::string text;                        // kLog: the line; kArtifact: the path;
                                           // kDone: the message
  double fraction = 0;                     // kProgress, clamped to [0, 1]
  int64_t step = 0;                        // kMetrics
  std::map<std::string, double> metrics;   // kMetrics (null values -> NaN)
  bool ok = false;                         // kDone
  std::string code;                        // kDone: "OK", "INTERNAL", ...
};

// Parses one line (without its newline). Never fails: anything that is not
// a recognised event comes back as a kLog event carrying the raw line.
ChildEvent ParseChildEventLine(std::string_view line);

// Splits a byte stream into lines. Feed() bytes as they arrive; complete
// lines (without '\n', a trailing '\r' removed) come back in order. A line
// longer than `max_line` bytes is cut into pieces of that size so a child
// that never prints a newline cannot grow the daemon's memory without bound.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 1 << 20) : max_line_(max_line) {}
  std::vector<std::string> Feed(std::string_view bytes);
  // Returns what is left after the stream ended (empty if nothing).
  std::string Finish();

 private:
  size_t max_line_;
  std::string partial_;
};

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_PROTOCOL_H_
