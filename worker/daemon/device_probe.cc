// Device discovery; see device_probe.h.
#include "worker/daemon/device_probe.h"

#include <unistd.h>

#include <string>

#include <torch/cuda.h>

namespace topolab::worker {

int CudaDeviceCount() {
  return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

std::vector<DeviceInfo> ProbeDevices(int64_t gpu_memory_bytes) {
  std::vector<DeviceInfo> devices;
  DeviceInfo cpu;
  cpu.type = "cpu";
  cpu.name = "cpu (" + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores)";
  cpu.memory_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  devices.push_back(cpu);
  const int n = CudaDeviceCount();
  for (int i = 0; i < n; ++i) {
    DeviceInfo gpu;
    gpu.type = "cuda";
    gpu.name = "cuda:" + std::to_string(i);
    gpu.memory_bytes = gpu_memory_bytes;
    devices.push_back(gpu);
  }
  return devices;
}

}  // namespace topolab::worker
