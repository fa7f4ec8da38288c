// EventHub: who wants to hear that an experiment changed.
//
// The scheduler core calls Notify() after every committed change (job state,
// progress, metrics, cancel request: Topic::kChanged) and after new log lines
// (Topic::kLogs). Streaming RPCs (WatchExperiment, StreamLogs with follow)
// subscribe and re-read the store when told, so nobody polls SQLite.
//
// Thread-safe. Callbacks run on the notifying thread (the core thread) while
// the hub's lock is held: they must be short and must not call back into the
// hub. After Unsubscribe() returns, the callback is not running and will not
// be called again, so a subscriber may free itself right after.
#ifndef TOPOLAB_SERVER_CORE_EVENT_HUB_H_
#define TOPOLAB_SERVER_CORE_EVENT_HUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace topolab::server {

class EventHub {
 public:
  enum class Topic { kChanged, kLogs };
  using Callback = std::function<void(Topic)>;

  // Returns a subscription id (never 0). An empty experiment_id subscribes to
  // every experiment.
  uint64_t Subscribe(const std::string& experiment_id, Callback callback);
  void Unsubscribe(uint64_t subscription_id);
  void Notify(const std::string& experiment_id, Topic topic);
  size_t SubscriberCountForTest() const;

 private:
  struct Entry {
    std::string experiment_id;
    Callback callback;
  };
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Entry> entries_;
  std::unordered_multimap<std::string, uint64_t> by_experiment_;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_CORE_EVENT_HUB_H_
