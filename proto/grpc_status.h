// absl::Status <-> grpc::Status. The codes match one for one, so the gRPC
// adapters convert with one call at the end of each method.
#ifndef TOPOLAB_PROTO_GRPC_STATUS_H_
#define TOPOLAB_PROTO_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace topolab {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace topolab

#endif  // TOPOLAB_PROTO_GRPC_STATUS_H_
