// Moving artifacts between a worker's disk and the scheduler: downloads of
// a job's inputs (Scheduler.DownloadArtifact, resumable, SHA-256 checked) and
// uploads of what a job wrote (Worker.UploadArtifact, <= 1 MiB chunks, the
// digest in the last message).
#ifndef TOPOLAB_WORKER_DAEMON_TRANSFER_H_
#define TOPOLAB_WORKER_DAEMON_TRANSFER_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <grpcpp/client_context.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "topolab.grpc.pb.h"

namespace topolab::worker {

inline constexpr size_t kArtifactChunkBytes = 1 << 20;

// Per-call settings shared by every RPC the worker makes.
struct RpcOptions {
  std::string token;  // sent as "authorization: Bearer <token>" when set
  std::chrono::milliseconds deadline{30000};
};
// Applies the token and a deadline of `deadline` from now.
void PrepareContext(grpc::ClientContext& context, const RpcOptions& options,
                    std::chrono::milliseconds deadline);

// Checks an artifact name the same way the scheduler does: a relative path
// of 1..255 chars, '/'-separated, no empty, "." or ".." segment, no
// backslash, NUL or control characters. Returns InvalidArgument naming the
// problem.
absl::Status CheckArtifactName(std::string_view name);

// `base / name` for a name that passes CheckArtifactName, so the result can
// never escape `base`. Returns InvalidArgument otherwise.
absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& base,
                                               std::string_view name);

// Downloads one artifact to `dest` (parents created). Bytes go to
// `dest.part` first, which a retry continues from; `dest` appears only after
// the SHA-256 of the whole file equals `expected_sha256` (otherwise DataLoss,
// and the partial file is deleted). Returns the RPC's status (Unavailable
// when the scheduler is away: retrying continues where it stopped).
absl::Status DownloadArtifact(v1::Scheduler::StubInterface& stub, const RpcOptions& rpc,
                              const std::string& experiment_id, const std::string& stage_id,
                              const std::string& name, const std::string& expected_sha256,
                              const std::filesystem::path& dest);

// Uploads `file` as artifact `name` of a job. Returns the stored artifact,
// FailedPrecondition for a stale fencing token, NotFound/Internal when the
// file cannot be read, or the RPC's status.
absl::StatusOr<v1::Artifact> UploadArtifactFile(v1::Worker::StubInterface& stub,
                                                const RpcOptions& rpc, const std::string& job_id,
                                                int64_t fencing_token, const std::string& name,
                                                const std::filesystem::path& file);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_TRANSFER_H_
