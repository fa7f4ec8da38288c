// ArtifactStore: content-addressed blobs (checkpoints, .npy, .png, logs, ...)
// under <data_dir>/artifacts/, named by the SHA-256 of their bytes.
//
// Upload protocol (what makes "a mismatched digest never becomes visible"):
//   1. NewWriter() creates a temp file under <data_dir>/artifacts/tmp/;
//   2. Append() streams bytes into it while hashing them;
//   3. Commit(expected) fsyncs the file, compares the digest, and only if it
//      matches renames it to BlobPath(digest) and fsyncs the directory;
//   4. the caller then writes the Store::PutArtifact row.
// A Writer destroyed before Commit (a truncated or cancelled upload) deletes
// its temp file. Open() removes temp files left behind by a crashed process.
// Blobs are immutable once visible; identical content is stored once.
//
// Layout: <data_dir>/artifacts/<sha[0:2]>/<sha>, temp files in
// <data_dir>/artifacts/tmp/.
//
// Thread-safety: every ArtifactStore method may be called from any thread. A
// Writer is used by one thread at a time.
#ifndef TOPOLAB_SERVER_STORE_ARTIFACT_STORE_H_
#define TOPOLAB_SERVER_STORE_ARTIFACT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace topolab::server {

// Maximum length of an artifact name, in bytes.
inline constexpr size_t kMaxArtifactNameLength = 255;

// Validates an artifact name: a relative path of 1..255 bytes, '/'-separated,
// with no empty, "." or ".." segment, no leading or trailing '/', no
// backslash, and no NUL or other control characters (bytes < 0x20 and 0x7f).
// Returns InvalidArgument naming the problem, or OK.
absl::Status ValidateArtifactName(std::string_view name);

class ArtifactStore {
 public:
  // Creates <data_dir>/artifacts/ and its tmp/ folder if missing and deletes
  // stale temp files. Returns InvalidArgument for an empty data_dir and
  // Internal (with the path and errno text) if a folder cannot be created.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(const std::string& data_dir);

  // One upload. Bytes go to a temp file under <data_dir>/artifacts/tmp/.
  class Writer {
   public:
    // Aborts (deletes the temp file) if Commit() did not succeed.
    virtual ~Writer();
    // Appends bytes. Internal on a write error (e.g. disk full; the upload is
    // then aborted); FailedPrecondition after Commit() was called.
    virtual absl::Status Append(std::string_view data) = 0;
    // Bytes appended so far.
    virtual int64_t size() const = 0;
    // fsyncs, checks sha256(bytes) == expected_sha256 and renames the temp
    // file to BlobPath(digest) (fsyncing the folder). Returns the digest.
    // DataLoss "sha256 mismatch: expected X got Y" if the digests differ;
    // InvalidArgument if expected_sha256 is not 64 lowercase hex digits;
    // Internal on an I/O error. On any error the temp file is deleted and
    // nothing becomes visible. Called at most once; FailedPrecondition after.
    virtual absl::StatusOr<std::string> Commit(const std::string& expected_sha256) = 0;
  };

  // Starts an upload. Internal if the temp file cannot be created.
  absl::StatusOr<std::unique_ptr<Writer>> NewWriter();

  // True if a committed blob with this digest exists (false for a string that
  // is not a digest).
  bool Contains(const std::string& sha256) const;
  // Size of a blob in bytes. NotFound if absent; InvalidArgument if sha256 is
  // not a digest.
  absl::StatusOr<int64_t> Size(const std::string& sha256) const;
  // Reads up to max_bytes from offset: fewer at the end of the blob, empty at
  // offset == size. OutOfRange if offset > size; InvalidArgument for a
  // negative offset or max_bytes or a malformed digest; NotFound if absent.
  absl::StatusOr<std::string> Read(const std::string& sha256, int64_t offset,
                                   int64_t max_bytes) const;
  // Where the blob with this digest lives (whether or not it exists).
  // REQUIRES: IsSha256Hex(sha256).
  std::string BlobPath(const std::string& sha256) const;

  // <data_dir>/artifacts: the root of the blob tree.
  const std::string& root() const { return root_; }
  // <data_dir>/artifacts/tmp: where uploads in progress live.
  const std::string& tmp_dir() const { return tmp_dir_; }

 private:
  explicit ArtifactStore(std::string root);

  std::string root_;     // <data_dir>/artifacts
  std::string tmp_dir_;  // <root_>/tmp
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_ARTIFACT_STORE_H_
