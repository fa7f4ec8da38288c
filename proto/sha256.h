// SHA-256 digests as lowercase hex: the identity of every artifact.
#ifndef TOPOLAB_PROTO_SHA256_H_
#define TOPOLAB_PROTO_SHA256_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace topolab {

// Incremental hasher. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the 64-character lowercase hex digest. REQUIRES: called once.
  std::string FinishHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string Sha256Hex(std::string_view data);
// Returns NotFound / Internal (with the path) if the file cannot be read.
absl::StatusOr<std::string> Sha256File(const std::string& path);
// True if `s` looks like a SHA-256 hex digest (64 lowercase hex chars).
bool IsSha256Hex(std::string_view s);

}  // namespace topolab

#endif  // TOPOLAB_PROTO_SHA256_H_
