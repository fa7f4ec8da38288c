// Helpers shared by the in-process job tests (tests/worker/jobs/*): a
// reporter that records what a job reports, a fresh per-test folder, and
// the inputs conventions the jobs assume.
#ifndef TOPOLAB_TESTS_WORKER_JOBS_JOB_TEST_UTIL_H_
#define TOPOLAB_TESTS_WORKER_JOBS_JOB_TEST_UTIL_H_

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/jobs/job.h"
#include "worker/science/data/dataset.h"

namespace topolab::worker {

// Records every report. CancelRequested() is true once `cancel` is set, or
// from the `cancel_at`-th call on (0 = never).
class RecordingReporter : public JobReporter {
 public:
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double fraction) override { progress.push_back(fraction); }
  void Metrics(int64_t, const std::map<std::string, double>& values) override { metrics = values; }
  void ArtifactReady(const std::string& path) override { artifacts.push_back(path); }
  bool CancelRequested() override { return cancel || (cancel_at > 0 && ++cancel_calls >= cancel_at); }

  std::vector<std::string> logs, artifacts;
  std::vector<double> progress;
  std::map<std::string, double> metrics;  // the newest Metrics() call
  bool cancel = false;
  int cancel_at = 0, cancel_calls = 0;
};

// True when Debian's dataset-fashion-mnist files are installed (tests that
// read them skip otherwise).
inline bool HaveFashionMnist() {
  return std::filesystem::exists(std::string(science::kDefaultFashionMnistPath) + "/t10k-images-idx3-ubyte.gz");
}

// An empty folder <tmp>/<prefix>_<pid>_<current test's name>.
inline std::filesystem::path FreshTestDir(const std::string& prefix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      (prefix + "_" + std::to_string(::getpid()) + "_" +
       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// (x - mean) / std with ImageNet's statistics: what the jobs feed models.
inline at::Tensor ImagenetNormalize(const at::Tensor& x01) {
  at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, x01.options()).view({1, 3, 1, 1});
  at::Tensor sd = at::tensor({0.229, 0.224, 0.225}, x01.options()).view({1, 3, 1, 1});
  return (x01 - mean) / sd;
}

}  // namespace topolab::worker

#endif  // TOPOLAB_TESTS_WORKER_JOBS_JOB_TEST_UTIL_H_
