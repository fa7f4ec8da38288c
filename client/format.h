// Rendering for the `topolab` CLI: tables, progress lines and JSON, plus the
// pure helpers the commands need (artifact globs, safe local paths, exit
// codes). Nothing here talks to the network, so tests/client covers it all.
#ifndef TOPOLAB_CLIENT_FORMAT_H_
#define TOPOLAB_CLIENT_FORMAT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "topolab.pb.h"

namespace topolab::client {

// ------------------------------------------------------------ names, numbers

// "JOB_RUNNING" -> "RUNNING", "EXPERIMENT_FAILED" -> "FAILED".
std::string JobStateName(v1::JobState s);
std::string ExperimentStateName(v1::ExperimentState s);
// Case-insensitive "running" / "RUNNING" / "experiment_running".
// Returns InvalidArgument listing the valid names otherwise.
absl::StatusOr<v1::ExperimentState> ParseExperimentState(std::string_view name);
bool IsTerminal(v1::ExperimentState s);
bool IsTerminal(v1::JobState s);

std::string FormatBytes(int64_t n);          // "1.5 MiB", "512 B"
std::string FormatDuration(int64_t ms);      // "45s", "3m12s", "2h05m", "3d04h"
// "5m ago" relative to now_ms, or "-" when t_ms is 0.
std::string FormatAge(int64_t t_ms, int64_t now_ms);
// A metric value with up to 4 significant digits ("0.5312", "1.2e+04").
std::string FormatMetric(double v);
// "loss=0.53 acc=0.81", keys sorted, at most max_items (then " ...").
std::string FormatMetrics(const google::protobuf::Map<std::string, double>& m, size_t max_items);

// --------------------------------------------------------------------- tables

// Aligned columns separated by two spaces; the last column is not padded.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

std::string ExperimentsTable(const std::vector<v1::Experiment>& exps, int64_t now_ms);
// Header lines (id, name, owner, state, ...) and a table of the jobs.
std::string ExperimentDetail(const v1::Experiment& exp, int64_t now_ms);
std::string WorkersTable(const std::vector<v1::WorkerInfo>& workers, int64_t now_ms);
std::string ArtifactsTable(const std::vector<v1::Artifact>& artifacts);

// "[#########...........]" of `width` cells for progress in [0, 1].
std::string ProgressBar(double progress, int width);
// One line per job for `watch`: stage, state, bar, percent, attempt, metrics.
std::string JobProgressLine(const v1::Job& job, size_t stage_width);
// The `watch` block: a header line then JobProgressLine for every job.
std::vector<std::string> WatchLines(const v1::Experiment& exp, int64_t now_ms);

// Flattens JSON to "a.b[2].c" -> compact value text (leaves only; empty
// arrays/objects are leaves).
std::map<std::string, std::string> FlattenJson(const nlohmann::json& j);
// `topolab compare`: the config settings (flattened config_json) whose values
// differ between the experiments, then every stage's metrics side by side.
// Missing values show as "-".
std::string CompareTable(const std::vector<v1::Experiment>& exps);

// ------------------------------------------------------------------------ JSON

// Proto -> JSON with field names as in the .proto, enums by name, int64 as
// numbers (not strings as in proto3's canonical JSON), maps as objects, and
// every field present.
nlohmann::ordered_json ToJson(const google::protobuf::Message& m);

// --------------------------------------------------------------------- pull

// Shell-style glob on '/'-separated names: `*` and `?` stay within one
// segment, `**` matches any number of segments, `[abc]`/`[a-z]`/`[!x]` sets.
bool GlobMatch(std::string_view pattern, std::string_view name);
// An artifact is selected by GLOB when it matches either its name
// ("checkpoints/final.pt") or "<stage>/<name>" ("train/checkpoints/final.pt").
bool ArtifactSelected(std::string_view glob, const v1::Artifact& a);

// DIR/<stage>/<name> for an artifact, refusing anything that could escape
// DIR: empty, ".", ".." segments, absolute names, backslashes, control
// characters, over-long names. Returns InvalidArgument naming the artifact.
absl::StatusOr<std::string> SafeArtifactPath(const std::string& dir, const std::string& stage,
                                             const std::string& name);

// What to do with a local file of `local_size` bytes (-1: none) for an
// artifact of `total_size` bytes: start over, resume, or check a complete one.
enum class PullAction { kDownload, kResume, kVerifyExisting };
PullAction PlanPull(int64_t local_size, int64_t total_size);

// ------------------------------------------------------------------ statuses

// Exit code for a failed operation: 2 for bad usage or input
// (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, ALREADY_EXISTS), else 1.
int ExitCodeFor(const absl::Status& s);
// One line for stderr: "cannot reach scheduler at ADDR" for UNAVAILABLE,
// otherwise the message (with the code name when the message is empty).
std::string ErrorLine(const absl::Status& s, const std::string& scheduler_addr);

}  // namespace topolab::client

#endif  // TOPOLAB_CLIENT_FORMAT_H_
