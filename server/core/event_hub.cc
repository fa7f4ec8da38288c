// EventHub: a lock-protected multimap from experiment id to callbacks.
#include "server/core/event_hub.h"

#include <utility>
#include <vector>

namespace topolab::server {

uint64_t EventHub::Subscribe(const std::string& experiment_id, Callback callback) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  entries_.emplace(id, Entry{experiment_id, std::move(callback)});
  by_experiment_.emplace(experiment_id, id);
  return id;
}

void EventHub::Unsubscribe(uint64_t subscription_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(subscription_id);
  if (it == entries_.end()) return;
  auto range = by_experiment_.equal_range(it->second.experiment_id);
  for (auto r = range.first; r != range.second; ++r) {
    if (r->second == subscription_id) {
      by_experiment_.erase(r);
      break;
    }
  }
  entries_.erase(it);
}

void EventHub::Notify(const std::string& experiment_id, Topic topic) {
  // Holding the lock while calling is what makes Unsubscribe() a barrier.
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string* key : {&experiment_id, static_cast<const std::string*>(nullptr)}) {
    static const std::string kAll;
    const std::string& k = key ? *key : kAll;
    if (!key && experiment_id.empty()) break;  // already delivered to "all"
    auto range = by_experiment_.equal_range(k);
    for (auto r = range.first; r != range.second; ++r) {
      auto e = entries_.find(r->second);
      if (e != entries_.end()) e->second.callback(topic);
    }
  }
}

size_t EventHub::SubscriberCountForTest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace topolab::server
