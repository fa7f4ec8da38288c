// ArtifactStore: temp file + fsync + digest check + rename, with POSIX calls
// so every durability step is explicit.
#include "server/store/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/sha256.h"

namespace topolab::server {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

// mkdir for one level; OK if it exists already. Sets *created when this call
// made it (its parent then needs an fsync for the entry to be durable).
absl::Status MakeDir(const std::string& path, bool* created = nullptr) {
  const bool made = ::mkdir(path.c_str(), 0755) == 0;
  if (created != nullptr) *created = made;
  if (made || errno == EEXIST) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoError("cannot stat", path, errno);
    if (!S_ISDIR(st.st_mode)) return absl::InternalError(absl::StrCat(path, " exists and is not a folder"));
    return absl::OkStatus();
  }
  return ErrnoError("cannot create folder", path, errno);
}

// Makes a rename or file creation inside `dir` durable.
absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open folder", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot fsync folder", dir, err);
  return absl::OkStatus();
}

absl::Status CheckDigest(const std::string& sha256) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", sha256, "' is not a sha256 digest (64 lowercase hex digits)"));
  }
  return absl::OkStatus();
}

class FileWriter : public ArtifactStore::Writer {
 public:
  FileWriter(const ArtifactStore* store, int fd, std::string tmp_path)
      : store_(store), fd_(fd), tmp_path_(std::move(tmp_path)) {}
  ~FileWriter() override { Abort(); }

  absl::Status Append(std::string_view data) override {
    if (fd_ < 0) return absl::FailedPreconditionError("artifact writer is already committed or aborted");
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        absl::Status s = ErrnoError("cannot write", tmp_path_, errno);
        Abort();
        return s;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    hasher_.Update(data);
    size_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  int64_t size() const override { return size_; }

  absl::StatusOr<std::string> Commit(const std::string& expected_sha256) override {
    if (fd_ < 0) return absl::FailedPreconditionError("artifact writer is already committed or aborted");
    if (absl::Status s = CheckDigest(expected_sha256); !s.ok()) {
      Abort();
      return s;
    }
    const std::string digest = hasher_.FinishHex();
    if (digest != expected_sha256) {
      Abort();
      return absl::DataLossError(
          absl::StrCat("sha256 mismatch: expected ", expected_sha256, " got ", digest));
    }
    // The bytes must be on disk before the name that promises them is.
    if (::fsync(fd_) != 0) {
      absl::Status s = ErrnoError("cannot fsync", tmp_path_, errno);
      Abort();
      return s;
    }
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) {
      absl::Status s = ErrnoError("cannot close", tmp_path_, errno);
      Abort();
      return s;
    }
    const std::string blob = store_->BlobPath(digest);
    const std::string dir = blob.substr(0, blob.rfind('/'));
    bool created = false;
    if (absl::Status s = MakeDir(dir, &created); !s.ok()) {
      Abort();
      return s;
    }
    if (created) {
      if (absl::Status s = SyncDir(store_->root()); !s.ok()) {
        Abort();
        return s;
      }
    }
    if (::access(blob.c_str(), F_OK) == 0) {
      // Same content is already stored; blobs are immutable.
      Abort();
      return digest;
    }
    if (::rename(tmp_path_.c_str(), blob.c_str()) != 0) {
      absl::Status s = ErrnoError("cannot rename to", blob, errno);
      Abort();
      return s;
    }
    tmp_path_.clear();
    if (absl::Status s = SyncDir(dir); !s.ok()) return s;
    return digest;
  }

 private:
  // Deletes the temp file; idempotent.
  void Abort() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!tmp_path_.empty()) {
      ::unlink(tmp_path_.c_str());
      tmp_path_.clear();
    }
  }

  const ArtifactStore* store_;
  int fd_;
  std::string tmp_path_;  // empty once renamed or deleted
  Sha256 hasher_;
  int64_t size_ = 0;
};

}  // namespace

absl::Status ValidateArtifactName(std::string_view name_in) {
  // This absl build has its own string_view type; StrCat wants that one.
  const absl::string_view name(name_in.data(), name_in.size());
  if (name.empty()) return absl::InvalidArgumentError("artifact name is empty");
  if (name.size() > kMaxArtifactNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("artifact name is ", name.size(),
                                                   " bytes long; at most ", kMaxArtifactNameLength,
                                                   " are allowed"));
  }
  if (name.front() == '/') {
    return absl::InvalidArgumentError(absl::StrCat("artifact name '", name, "' is an absolute path"));
  }
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("artifact name contains control character 0x", absl::Hex(u, absl::kZeroPad2)));
    }
    if (c == '\\') {
      return absl::InvalidArgumentError(absl::StrCat("artifact name '", name, "' contains a backslash"));
    }
  }
  size_t start = 0;
  while (true) {
    size_t end = name.find('/', start);
    absl::string_view seg = name.substr(start, end == absl::string_view::npos ? name.npos : end - start);
    if (seg.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("artifact name '", name, "' has an empty path segment"));
    }
    if (seg == "." || seg == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("artifact name '", name, "' has a '", seg, "' path segment"));
    }
    if (end == absl::string_view::npos) break;
    start = end + 1;
  }
  return absl::OkStatus();
}

ArtifactStore::Writer::~Writer() = default;

ArtifactStore::ArtifactStore(std::string root) : root_(std::move(root)), tmp_dir_(root_ + "/tmp") {}

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(const std::string& data_dir) {
  if (data_dir.empty()) return absl::InvalidArgumentError("artifact store: empty data dir");
  std::string base = data_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (absl::Status s = MakeDir(base); !s.ok()) return s;
  std::unique_ptr<ArtifactStore> store(new ArtifactStore(base + "/artifacts"));
  if (absl::Status s = MakeDir(store->root_); !s.ok()) return s;
  if (absl::Status s = MakeDir(store->tmp_dir_); !s.ok()) return s;
  // Temp files of uploads that a crash interrupted: never visible, now garbage.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(store->tmp_dir_, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code ignored;
    std::filesystem::remove(it->path(), ignored);
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot list ", store->tmp_dir_, ": ", ec.message()));
  }
  return store;
}

absl::StatusOr<std::unique_ptr<ArtifactStore::Writer>> ArtifactStore::NewWriter() {
  std::string path = tmp_dir_ + "/upload-XXXXXX";
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot create temp file in", tmp_dir_, errno);
  return std::unique_ptr<Writer>(new FileWriter(this, fd, std::move(path)));
}

std::string ArtifactStore::BlobPath(const std::string& sha256) const {
  return absl::StrCat(root_, "/", sha256.substr(0, 2), "/", sha256);
}

bool ArtifactStore::Contains(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  struct stat st;
  return ::stat(BlobPath(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<int64_t> ArtifactStore::Size(const std::string& sha256) const {
  if (absl::Status s = CheckDigest(sha256); !s.ok()) return s;
  const std::string path = BlobPath(sha256);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no artifact blob ", sha256));
    return ErrnoError("cannot stat", path, errno);
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> ArtifactStore::Read(const std::string& sha256, int64_t offset,
                                                int64_t max_bytes) const {
  if (absl::Status s = CheckDigest(sha256); !s.ok()) return s;
  if (offset < 0 || max_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("read of ", sha256, ": negative offset ", offset, " or max_bytes ", max_bytes));
  }
  const std::string path = BlobPath(sha256);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no artifact blob ", sha256));
    return ErrnoError("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoError("cannot stat", path, errno);
    ::close(fd);
    return s;
  }
  const int64_t size = st.st_size;
  if (offset > size) {
    ::close(fd);
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of artifact ", sha256, " (", size, " bytes)"));
  }
  std::string out(static_cast<size_t>(std::min(max_bytes, size - offset)), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, offset + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("cannot read", path, errno);
      ::close(fd);
      return s;
    }
    if (n == 0) break;  // cannot happen for an immutable blob; be safe
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace topolab::server
