// Artifact downloads and uploads; see transfer.h.
#include "worker/daemon/transfer.h"

#include <fstream>
#include <memory>
#include <vector>

#include "proto/grpc_status.h"
#include "proto/sha256.h"

namespace topolab::worker {

void PrepareContext(grpc::ClientContext& context, const RpcOptions& options,
                    std::chrono::milliseconds deadline) {
  if (!options.token.empty()) context.AddMetadata("authorization", "Bearer " + options.token);
  context.set_deadline(std::chrono::system_clock::now() + deadline);
}

absl::Status CheckArtifactName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("artifact name is empty");
  if (name.size() > 255) {
    return absl::InvalidArgumentError("artifact name is longer than 255 characters");
  }
  if (name.front() == '/') {
    return absl::InvalidArgumentError("artifact name '" + std::string(name) + "' is absolute");
  }
  for (char c : name) {
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("artifact name '" + std::string(name) +
                                        "' contains a backslash or control character");
    }
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view segment = name.substr(start, slash - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError("artifact name '" + std::string(name) +
                                        "' has an empty, '.' or '..' segment");
    }
    start = slash + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& base,
                                               std::string_view name) {
  absl::Status s = CheckArtifactName(name);
  if (!s.ok()) return s;
  return base / std::filesystem::path(std::string(name));
}

absl::Status DownloadArtifact(v1::Scheduler::StubInterface& stub, const RpcOptions& rpc,
                              const std::string& experiment_id, const std::string& stage_id,
                              const std::string& name, const std::string& expected_sha256,
                              const std::filesystem::path& dest) {
  std::error_code ec;
  std::filesystem::create_directories(dest.parent_path(), ec);
  if (ec) return absl::InternalError("cannot create " + dest.parent_path().string() + ": " + ec.message());
  std::filesystem::path part = dest;
  part += ".part";
  int64_t offset = 0;
  if (std::filesystem::exists(part)) offset = static_cast<int64_t>(std::filesystem::file_size(part, ec));
  if (ec) offset = 0;

  v1::DownloadArtifactRequest request;
  request.set_experiment_id(experiment_id);
  request.set_stage_id(stage_id);
  request.set_name(name);
  request.set_offset(offset);
  grpc::ClientContext context;
  // Large checkpoints: allow a generous deadline for the whole stream.
  PrepareContext(context, rpc, std::chrono::minutes(30));
  std::unique_ptr<grpc::ClientReaderInterface<v1::ArtifactChunk>> reader =
      stub.DownloadArtifact(&context, request);
  std::ofstream out(part, std::ios::binary | (offset > 0 ? std::ios::app : std::ios::trunc));
  if (!out) return absl::InternalError("cannot write " + part.string());
  v1::ArtifactChunk chunk;
  std::string server_sha;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != offset) {
      context.TryCancel();
      reader->Finish();
      out.close();
      std::filesystem::remove(part, ec);
      return absl::DataLossError("download of " + stage_id + "/" + name + ": chunk at offset " +
                                 std::to_string(chunk.offset()) + ", expected " +
                                 std::to_string(offset));
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    offset += static_cast<int64_t>(chunk.data().size());
    if (!chunk.sha256().empty()) server_sha = chunk.sha256();
  }
  out.close();
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!out) return absl::InternalError("cannot write " + part.string());

  absl::StatusOr<std::string> got = Sha256File(part.string());
  if (!got.ok()) return got.status();
  const std::string& want = expected_sha256.empty() ? server_sha : expected_sha256;
  if (*got != want) {
    std::filesystem::remove(part, ec);
    return absl::DataLossError("download of " + stage_id + "/" + name + ": sha256 mismatch: expected " +
                               want + " got " + *got);
  }
  std::filesystem::rename(part, dest, ec);
  if (ec) return absl::InternalError("cannot rename " + part.string() + ": " + ec.message());
  return absl::OkStatus();
}

absl::StatusOr<v1::Artifact> UploadArtifactFile(v1::Worker::StubInterface& stub,
                                                const RpcOptions& rpc, const std::string& job_id,
                                                int64_t fencing_token, const std::string& name,
                                                const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read artifact file " + file.string());
  grpc::ClientContext context;
  PrepareContext(context, rpc, std::chrono::minutes(30));
  v1::UploadArtifactResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::UploadArtifactRequest>> writer =
      stub.UploadArtifact(&context, &response);
  // The digest covers exactly the bytes sent, even if the job rewrites the
  // file meanwhile; the scheduler checks it before anything becomes visible.
  Sha256 hasher;
  std::vector<char> buf(kArtifactChunkBytes);
  bool stream_ok = true;
  while (true) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize got = in.gcount();
    if (in.bad()) {
      context.TryCancel();
      writer->Finish();
      return absl::InternalError("error reading artifact file " + file.string());
    }
    bool last = in.eof() || got < static_cast<std::streamsize>(buf.size());
    v1::UploadArtifactRequest request;
    request.set_job_id(job_id);
    request.set_fencing_token(fencing_token);
    request.set_name(name);
    request.set_data(buf.data(), static_cast<size_t>(got));
    hasher.Update(buf.data(), static_cast<size_t>(got));
    if (last) {
      request.set_last(true);
      request.set_sha256(hasher.FinishHex());
    }
    if (!writer->Write(request)) {  // the server ended the stream early
      stream_ok = false;
      break;
    }
    if (last) break;
  }
  if (stream_ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!stream_ok) return absl::UnavailableError("upload stream of " + name + " ended early");
  return response.artifact();
}

}  // namespace topolab::worker
