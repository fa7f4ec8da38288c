// Child protocol parsing; see protocol.h.
#include "worker/daemon/protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace topolab::worker {
namespace {

ChildEvent RawLog(std::string_view line) {
  ChildEvent e;
  e.type = ChildEvent::Type::kLog;
  e.text = std::string(line);
  return e;
}

}  // namespace

ChildEvent ParseChildEventLine(std::string_view line) {
  // Cheap pre-check: only objects can be events.
  size_t first = line.find_first_not_of(" \t");
  if (first == std::string_view::npos || line[first] != '{') return RawLog(line);
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("event") || !j["event"].is_string()) return RawLog(line);
  const std::string type = j["event"].get<std::string>();
  ChildEvent e;
  if (type == "log") {
    if (!j.contains("line") || !j["line"].is_string()) return RawLog(line);
    e.type = ChildEvent::Type::kLog;
    e.text = j["line"].get<std::string>();
  } else if (type == "progress") {
    if (!j.contains("fraction") || !j["fraction"].is_number()) return RawLog(line);
    e.type = ChildEvent::Type::kProgress;
    double f = j["fraction"].get<double>();
    e.fraction = std::isfinite(f) ? std::clamp(f, 0.0, 1.0) : 0.0;
  } else if (type == "metrics") {
    if (!j.contains("values") || !j["values"].is_object()) return RawLog(line);
    e.type = ChildEvent::Type::kMetrics;
    if (j.contains("step") && j["step"].is_number_integer()) e.step = j["step"].get<int64_t>();
    for (const auto& [name, value] : j["values"].items()) {
      if (value.is_number()) {
        e.metrics[name] = value.get<double>();
      } else if (value.is_null()) {  // JSON has no NaN; the writer emits null
        e.metrics[name] = std::numeric_limits<double>::quiet_NaN();
      }
    }
  } else if (type == "artifact") {
    if (!j.contains("path") || !j["path"].is_string()) return RawLog(line);
    e.type = ChildEvent::Type::kArtifact;
    e.text = j["path"].get<std::string>();
  } else if (type == "done") {
    if (!j.contains("ok") || !j["ok"].is_boolean()) return RawLog(line);
    e.type = ChildEvent::Type::kDone;
    e.ok = j["ok"].get<bool>();
    if (j.contains("code") && j["code"].is_string()) e.code = j["code"].get<std::string>();
    if (j.contains("message") && j["message"].is_string()) e.text = j["message"].get<std::string>();
  } else {
    return RawLog(line);
  }
  return e;
}

std::vector<std::string> LineSplitter::Feed(std::string_view bytes) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) {
      partial_.append(bytes.substr(start));
      break;
    }
    partial_.append(bytes.substr(start, nl - start));
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    lines.push_back(std::move(partial_));
    partial_.clear();
    start = nl + 1;
  }
  while (partial_.size() > max_line_) {
    lines.push_back(partial_.substr(0, max_line_));
    partial_.erase(0, max_line_);
  }
  return lines;
}

std::string LineSplitter::Finish() {
  std::string rest = std::move(partial_);
  partial_.clear();
  if (!rest.empty() && rest.back() == '\r') rest.pop_back();
  return rest;
}

}  // namespace topolab::worker
