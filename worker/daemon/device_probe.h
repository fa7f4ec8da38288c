// What this host can run jobs on: the CPU, plus CUDA devices when the
// installed LibTorch was built with CUDA and a GPU is visible. Kept in its
// own small LibTorch translation unit so the daemon library stays free of
// LibTorch.
#ifndef TOPOLAB_WORKER_DAEMON_DEVICE_PROBE_H_
#define TOPOLAB_WORKER_DAEMON_DEVICE_PROBE_H_

#include <vector>

#include "worker/daemon/worker_daemon.h"

namespace topolab::worker {

// Returns {cpu (memory = physical RAM)} followed by one entry per CUDA
// device. `gpu_memory_bytes` is reported for each CUDA device (LibTorch's
// C++ API cannot query it without the CUDA runtime headers).
std::vector<DeviceInfo> ProbeDevices(int64_t gpu_memory_bytes);

// Number of CUDA devices LibTorch can use (0 on CPU-only builds).
int CudaDeviceCount();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_DEVICE_PROBE_H_
