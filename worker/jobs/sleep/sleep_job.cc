// The `sleep` job kind; see sleep_job.h.
#include "worker/jobs/sleep/sleep_job.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace topolab::worker {
namespace {

constexpr char kStateName[] = "checkpoints/sleep_state.json";

// Writes via a temporary name so a reader (the daemon's uploader) never sees
// a half-written file.
absl::Status WriteJsonFile(const std::filesystem::path& path, const nlohmann::json& value) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return absl::InternalError("cannot create " + path.parent_path().string() + ": " + ec.message());
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << value.dump() << "\n";
    if (!out) return absl::InternalError("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError("cannot rename " + tmp.string() + ": " + ec.message());
  return absl::OkStatus();
}

class SleepJob : public Job {
 public:
  absl::Status Run(JobContext& ctx) override {
    JobReporter& r = *ctx.reporter;
    const nlohmann::json& spec = ctx.spec;
    double seconds = 1.0;
    int64_t steps = 10;
    bool fail = false;
    std::string message = "sleep job failed as requested (fail: true)";
    try {
      seconds = spec.value("seconds", 1.0);
      steps = spec.value("steps", int64_t{10});
      fail = spec.value("fail", false);
      if (spec.contains("message") && spec["message"].is_string() &&
          !spec["message"].get<std::string>().empty()) {
        message = spec["message"].get<std::string>();
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(std::string("sleep spec: ") + e.what());
    }
    if (!(seconds >= 0)) return absl::InvalidArgumentError("seconds: must be >= 0");
    if (steps < 1) return absl::InvalidArgumentError("steps: must be a positive integer");

    int64_t start_step = 0;
    const std::filesystem::path resume_state = ctx.resume_dir / kStateName;
    if (!ctx.resume_dir.empty() && std::filesystem::exists(resume_state)) {
      std::ifstream in(resume_state);
      nlohmann::json state = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (state.is_object() && state.contains("step") && state["step"].is_number_integer()) {
        start_step = std::clamp<int64_t>(state["step"].get<int64_t>(), 0, steps);
        r.Log("resumed from step " + std::to_string(start_step));
      } else {
        r.Log("ignoring unreadable " + resume_state.string());
      }
    }
    r.Log("sleeping " + std::to_string(seconds) + " s in " + std::to_string(steps) +
          " steps (attempt " + std::to_string(ctx.attempt) + ")");

    const auto step_duration = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(seconds / static_cast<double>(steps)));
    for (int64_t step = start_step; step < steps; ++step) {
      const auto until = std::chrono::steady_clock::now() + step_duration;
      while (std::chrono::steady_clock::now() < until) {
        if (r.CancelRequested()) {
          r.Log("cancelled at step " + std::to_string(step));
          return absl::CancelledError("sleep cancelled at step " + std::to_string(step));
        }
        auto left = until - std::chrono::steady_clock::now();
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            left, std::chrono::milliseconds(20)));
      }
      const int64_t done = step + 1;
      absl::Status s = WriteJsonFile(ctx.out_dir / kStateName, {{"step", done}});
      if (!s.ok()) return s;
      r.ArtifactReady(kStateName);
      r.Metrics(done, {{"step", static_cast<double>(done)}});
      r.Progress(static_cast<double>(done) / steps);
    }
    if (r.CancelRequested()) return absl::CancelledError("sleep cancelled at the end");
    if (fail) {
      r.Log(message);
      return absl::AbortedError(message);
    }
    absl::Status s = WriteJsonFile(
        ctx.out_dir / "result.json",
        {{"steps", steps}, {"resumed_from", start_step}, {"attempt", ctx.attempt}});
    if (!s.ok()) return s;
    r.ArtifactReady("result.json");
    r.Log("slept " + std::to_string(steps - start_step) + " steps");
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Job> MakeSleepJob() { return std::make_unique<SleepJob>(); }

}  // namespace topolab::worker
