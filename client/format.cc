// Rendering and pure helpers of the `topolab` CLI.
#include "client/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace topolab::client {
namespace {

std::string StripPrefix(const std::string& name, std::string_view prefix) {
  if (name.rfind(prefix, 0) == 0) return name.substr(prefix.size());
  return name;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string JobsSummary(const v1::Experiment& e) {
  int done = 0;
  for (const auto& j : e.jobs()) {
    if (j.state() == v1::JOB_SUCCEEDED) ++done;
  }
  return absl::StrCat(done, "/", e.jobs_size());
}

}  // namespace

std::string JobStateName(v1::JobState s) {
  if (!v1::JobState_IsValid(s) || s == v1::JOB_STATE_UNSPECIFIED) return "UNKNOWN";
  return StripPrefix(v1::JobState_Name(s), "JOB_");
}

std::string ExperimentStateName(v1::ExperimentState s) {
  if (!v1::ExperimentState_IsValid(s) || s == v1::EXPERIMENT_STATE_UNSPECIFIED) return "UNKNOWN";
  return StripPrefix(v1::ExperimentState_Name(s), "EXPERIMENT_");
}

absl::StatusOr<v1::ExperimentState> ParseExperimentState(std::string_view name) {
  std::string u = Upper(name);
  if (u.rfind("EXPERIMENT_", 0) != 0) u = "EXPERIMENT_" + u;
  v1::ExperimentState s;
  if (!v1::ExperimentState_Parse(u, &s) || s == v1::EXPERIMENT_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state: unknown state \"", std::string(name), "\" (one of queued, running, succeeded, failed, cancelled)"));
  }
  return s;
}

bool IsTerminal(v1::ExperimentState s) {
  return s == v1::EXPERIMENT_SUCCEEDED || s == v1::EXPERIMENT_FAILED || s == v1::EXPERIMENT_CANCELLED;
}
bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED;
}

std::string FormatBytes(int64_t n) {
  if (n < 1024) return absl::StrCat(n, " B");
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = -1;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), v < 10 ? "%.1f %s" : "%.0f %s", v, kUnits[u]);
  return buf;
}

std::string FormatDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>((s % 86400) / 3600));
  }
  return buf;
}

std::string FormatAge(int64_t t_ms, int64_t now_ms) {
  if (t_ms <= 0) return "-";
  return FormatDuration(now_ms - t_ms) + " ago";
}

std::string FormatMetric(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (v == 0) return "0";
  if (a >= 1e5 || a < 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.4g", v);
  }
  return buf;
}

std::string FormatMetrics(const google::protobuf::Map<std::string, double>& m, size_t max_items) {
  std::vector<std::string> keys;
  for (const auto& kv : m) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> parts;
  for (size_t i = 0; i < keys.size() && i < max_items; ++i) {
    parts.push_back(absl::StrCat(keys[i], "=", FormatMetric(m.at(keys[i]))));
  }
  std::string out = absl::StrJoin(parts, " ");
  if (keys.size() > max_items) absl::StrAppend(&out, " ...");
  return out;
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < header.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      l += cell;
      if (c + 1 < header.size()) l += std::string(width[c] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string ExperimentsTable(const std::vector<v1::Experiment>& exps, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : exps) {
    rows.push_back({e.id(), e.name(), e.owner(), ExperimentStateName(e.state()), JobsSummary(e),
                    std::to_string(e.priority()), FormatAge(e.created_at_ms(), now_ms)});
  }
  return RenderTable({"ID", "NAME", "OWNER", "STATE", "DONE", "PRIORITY", "CREATED"}, rows);
}

std::string ExperimentDetail(const v1::Experiment& e, int64_t now_ms) {
  std::string out;
  absl::StrAppend(&out, "experiment  ", e.id(), "\n");
  absl::StrAppend(&out, "name        ", e.name(), "\n");
  absl::StrAppend(&out, "owner       ", e.owner(), "\n");
  absl::StrAppend(&out, "state       ", ExperimentStateName(e.state()), "\n");
  absl::StrAppend(&out, "priority    ", e.priority(), "\n");
  absl::StrAppend(&out, "created     ", FormatAge(e.created_at_ms(), now_ms), "\n");
  if (e.finished_at_ms() > 0) {
    absl::StrAppend(&out, "finished    ", FormatAge(e.finished_at_ms(), now_ms), " (took ",
                    FormatDuration(e.finished_at_ms() - e.created_at_ms()), ")\n");
  }
  if (!e.config_hash().empty()) absl::StrAppend(&out, "config      sha256:", e.config_hash(), "\n");
  absl::StrAppend(&out, "\n");
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : e.jobs()) {
    std::string runtime = "-";
    if (j.started_at_ms() > 0) {
      int64_t end = j.finished_at_ms() > 0 ? j.finished_at_ms() : now_ms;
      runtime = FormatDuration(end - j.started_at_ms());
    }
    rows.push_back({j.stage_id(), j.kind(), JobStateName(j.state()),
                    absl::StrCat(j.attempt(), "/", j.max_attempts()),
                    absl::StrCat(static_cast<int>(std::lround(std::clamp(j.progress(), 0.0, 1.0) * 100)), "%"),
                    runtime, j.needs().empty() ? "-" : absl::StrJoin(j.needs(), ","),
                    FormatMetrics(j.metrics(), 6), j.message()});
  }
  absl::StrAppend(&out, RenderTable({"STAGE", "KIND", "STATE", "ATTEMPT", "PROGRESS", "RUNTIME", "NEEDS",
                                     "METRICS", "MESSAGE"},
                                    rows));
  return out;
}

std::string WorkersTable(const std::vector<v1::WorkerInfo>& workers, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : workers) {
    std::vector<std::string> devs;
    for (const auto& d : w.devices()) {
      std::string s = d.type();
      if (d.memory_bytes() > 0) absl::StrAppend(&s, "(", FormatBytes(d.memory_bytes()), ")");
      devs.push_back(s);
    }
    rows.push_back({w.id(), w.host(), absl::StrJoin(devs, ","), absl::StrJoin(w.job_kinds(), ","),
                    absl::StrCat(w.running_job_ids_size(), "/", w.max_concurrent_jobs()),
                    w.alive() ? "yes" : "no", FormatAge(w.last_seen_ms(), now_ms)});
  }
  return RenderTable({"ID", "HOST", "DEVICES", "KINDS", "JOBS", "ALIVE", "LAST SEEN"}, rows);
}

std::string ArtifactsTable(const std::vector<v1::Artifact>& artifacts) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : artifacts) {
    rows.push_back({a.stage_id(), a.name(), FormatBytes(a.size()), a.sha256().substr(0, 12)});
  }
  return RenderTable({"STAGE", "NAME", "SIZE", "SHA256"}, rows);
}

std::string ProgressBar(double progress, int width) {
  if (!(progress >= 0)) progress = 0;  // also NaN
  progress = std::min(progress, 1.0);
  int filled = static_cast<int>(std::floor(progress * width + 1e-9));
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

std::string JobProgressLine(const v1::Job& job, size_t stage_width) {
  std::string stage = job.stage_id();
  if (stage.size() < stage_width) stage += std::string(stage_width - stage.size(), ' ');
  std::string state = JobStateName(job.state());
  state += std::string(state.size() < 9 ? 9 - state.size() : 0, ' ');
  double p = job.state() == v1::JOB_SUCCEEDED ? 1.0 : job.progress();
  char pct[8];
  std::snprintf(pct, sizeof(pct), "%3d%%", static_cast<int>(std::floor(std::clamp(p, 0.0, 1.0) * 100 + 1e-9)));
  std::string line = absl::StrCat(stage, "  ", state, "  ", ProgressBar(p, 24), " ", pct);
  if (job.attempt() > 1 || job.state() == v1::JOB_RUNNING) {
    absl::StrAppend(&line, "  attempt ", job.attempt(), "/", job.max_attempts());
  }
  if (!job.metrics().empty()) absl::StrAppend(&line, "  ", FormatMetrics(job.metrics(), 4));
  if (!job.message().empty() && (job.state() == v1::JOB_FAILED || job.state() == v1::JOB_CANCELLED)) {
    absl::StrAppend(&line, "  (", job.message(), ")");
  }
  return line;
}

std::vector<std::string> WatchLines(const v1::Experiment& e, int64_t now_ms) {
  std::vector<std::string> out;
  int64_t end = e.finished_at_ms() > 0 ? e.finished_at_ms() : now_ms;
  out.push_back(absl::StrCat(e.id(), "  ", e.name(), "  ", ExperimentStateName(e.state()), "  ",
                             e.created_at_ms() > 0 ? FormatDuration(end - e.created_at_ms()) : "-"));
  size_t w = 0;
  for (const auto& j : e.jobs()) w = std::max(w, j.stage_id().size());
  for (const auto& j : e.jobs()) out.push_back("  " + JobProgressLine(j, w));
  return out;
}

namespace {

void Flatten(const nlohmann::json& j, const std::string& path, std::map<std::string, std::string>* out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      Flatten(it.value(), path.empty() ? it.key() : path + "." + it.key(), out);
    }
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) Flatten(j[i], absl::StrCat(path, "[", i, "]"), out);
  } else {
    (*out)[path] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

}  // namespace

std::map<std::string, std::string> FlattenJson(const nlohmann::json& j) {
  std::map<std::string, std::string> out;
  Flatten(j, "", &out);
  return out;
}

std::string CompareTable(const std::vector<v1::Experiment>& exps) {
  std::vector<std::string> header = {"SETTING"};
  for (const auto& e : exps) header.push_back(e.id());
  std::vector<std::map<std::string, std::string>> flat;
  std::set<std::string> keys;
  for (const auto& e : exps) {
    nlohmann::json cfg = nlohmann::json::parse(e.config_json(), nullptr, /*allow_exceptions=*/false);
    if (cfg.is_discarded()) cfg = nlohmann::json::object();
    // Stages are compared by id, not by position in the file.
    if (cfg.contains("stages") && cfg["stages"].is_array()) {
      nlohmann::json by_id = nlohmann::json::object();
      for (auto& st : cfg["stages"]) {
        if (st.is_object() && st.contains("id") && st["id"].is_string()) by_id[st["id"].get<std::string>()] = st;
      }
      cfg["stages"] = by_id;
    }
    cfg.erase("owner");  // who ran it is not a setting
    cfg.erase("name");   // shown in its own row
    flat.push_back(FlattenJson(cfg));
    for (const auto& kv : flat.back()) keys.insert(kv.first);
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"name"});
  rows.push_back({"state"});
  for (const auto& e : exps) {
    rows[0].push_back(e.name());
    rows[1].push_back(ExperimentStateName(e.state()));
  }
  for (const auto& k : keys) {
    std::vector<std::string> row = {k};
    bool differ = false;
    for (size_t i = 0; i < exps.size(); ++i) {
      auto it = flat[i].find(k);
      row.push_back(it == flat[i].end() ? "-" : it->second);
      if (row.back() != row[1]) differ = true;
    }
    if (differ) rows.push_back(std::move(row));
  }
  std::string out = RenderTable(header, rows);
  // Metrics: one row per (stage, metric).
  std::set<std::pair<std::string, std::string>> mkeys;
  for (const auto& e : exps) {
    for (const auto& j : e.jobs()) {
      for (const auto& kv : j.metrics()) mkeys.insert({j.stage_id(), kv.first});
    }
  }
  if (!mkeys.empty()) {
    std::vector<std::string> mh = {"METRIC"};
    for (const auto& e : exps) mh.push_back(e.id());
    std::vector<std::vector<std::string>> mrows;
    for (const auto& [stage, metric] : mkeys) {
      std::vector<std::string> row = {stage + "." + metric};
      for (const auto& e : exps) {
        std::string v = "-";
        for (const auto& j : e.jobs()) {
          if (j.stage_id() != stage) continue;
          auto it = j.metrics().find(metric);
          if (it != j.metrics().end()) v = FormatMetric(it->second);
        }
        row.push_back(v);
      }
      mrows.push_back(std::move(row));
    }
    absl::StrAppend(&out, "\n", RenderTable(mh, mrows));
  }
  return out;
}

nlohmann::ordered_json ToJson(const google::protobuf::Message& m) {
  using google::protobuf::FieldDescriptor;
  const auto* desc = m.GetDescriptor();
  const auto* refl = m.GetReflection();
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  auto scalar = [&](const google::protobuf::Message& msg, const FieldDescriptor* f,
                    int index) -> nlohmann::ordered_json {
    const bool rep = index >= 0;
    const auto* refl = msg.GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: return rep ? refl->GetRepeatedInt32(msg, f, index) : refl->GetInt32(msg, f);
      case FieldDescriptor::CPPTYPE_INT64: return rep ? refl->GetRepeatedInt64(msg, f, index) : refl->GetInt64(msg, f);
      case FieldDescriptor::CPPTYPE_UINT32: return rep ? refl->GetRepeatedUInt32(msg, f, index) : refl->GetUInt32(msg, f);
      case FieldDescriptor::CPPTYPE_UINT64: return rep ? refl->GetRepeatedUInt64(msg, f, index) : refl->GetUInt64(msg, f);
      case FieldDescriptor::CPPTYPE_DOUBLE: return rep ? refl->GetRepeatedDouble(msg, f, index) : refl->GetDouble(msg, f);
      case FieldDescriptor::CPPTYPE_FLOAT: return rep ? refl->GetRepeatedFloat(msg, f, index) : refl->GetFloat(msg, f);
      case FieldDescriptor::CPPTYPE_BOOL: return rep ? refl->GetRepeatedBool(msg, f, index) : refl->GetBool(msg, f);
      case FieldDescriptor::CPPTYPE_ENUM:
        return (rep ? refl->GetRepeatedEnum(msg, f, index) : refl->GetEnum(msg, f))->name();
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string s = rep ? refl->GetRepeatedString(msg, f, index) : refl->GetString(msg, f);
        if (f->type() == FieldDescriptor::TYPE_BYTES) return absl::StrCat("<", s.size(), " bytes>");
        return s;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return ToJson(rep ? refl->GetRepeatedMessage(msg, f, index) : refl->GetMessage(msg, f));
    }
    return nullptr;
  };
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->is_map()) {
      nlohmann::ordered_json obj = nlohmann::ordered_json::object();
      std::vector<std::pair<std::string, nlohmann::ordered_json>> entries;
      for (int k = 0; k < refl->FieldSize(m, f); ++k) {
        const auto& entry = refl->GetRepeatedMessage(m, f, k);
        const auto* ed = entry.GetDescriptor();
        nlohmann::ordered_json key = scalar(entry, ed->field(0), -1);
        entries.emplace_back(key.is_string() ? key.get<std::string>() : key.dump(),
                             scalar(entry, ed->field(1), -1));
      }
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [k, v] : entries) obj[k] = std::move(v);
      out[f->name()] = std::move(obj);
    } else if (f->is_repeated()) {
      nlohmann::ordered_json arr = nlohmann::ordered_json::array();
      for (int k = 0; k < refl->FieldSize(m, f); ++k) arr.push_back(scalar(m, f, k));
      out[f->name()] = std::move(arr);
    } else {
      out[f->name()] = scalar(m, f, -1);
    }
  }
  return out;
}

namespace {

// Splits on '/', keeping empty segments.
std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// Matches one segment (no '/') against a segment pattern with * ? [..].
bool MatchSegment(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0, star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_s = si;
      continue;
    }
    if (pi < p.size() && p[pi] == '[') {
      size_t end = p.find(']', pi + 2);
      if (end != std::string_view::npos) {
        bool negate = p[pi + 1] == '!' || p[pi + 1] == '^';
        size_t k = pi + 1 + (negate ? 1 : 0);
        bool hit = false;
        for (; k < end; ++k) {
          if (k + 2 < end && p[k + 1] == '-') {
            if (s[si] >= p[k] && s[si] <= p[k + 2]) hit = true;
            k += 2;
          } else if (p[k] == s[si]) {
            hit = true;
          }
        }
        if (hit != negate) {
          pi = end + 1;
          ++si;
          continue;
        }
      } else if (s[si] == '[') {
        ++pi;
        ++si;
        continue;
      }
    } else if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool MatchSegments(const std::vector<std::string_view>& p, size_t pi, const std::vector<std::string_view>& s,
                   size_t si) {
  if (pi == p.size()) return si == s.size();
  if (p[pi] == "**") {
    for (size_t k = si; k <= s.size(); ++k) {
      if (MatchSegments(p, pi + 1, s, k)) return true;
    }
    return false;
  }
  if (si == s.size()) return false;
  return MatchSegment(p[pi], s[si]) && MatchSegments(p, pi + 1, s, si + 1);
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view name) {
  std::vector<std::string_view> p = Split(pattern);
  std::vector<std::string_view> s = Split(name);
  return MatchSegments(p, 0, s, 0);
}

bool ArtifactSelected(std::string_view glob, const v1::Artifact& a) {
  if (glob.empty()) return true;
  return GlobMatch(glob, a.name()) || GlobMatch(glob, a.stage_id() + "/" + a.name());
}

absl::StatusOr<std::string> SafeArtifactPath(const std::string& dir, const std::string& stage,
                                             const std::string& name) {
  const std::string what = absl::StrCat("artifact \"", stage, "/", name, "\"");
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": refusing unsafe name (", std::string(why), ")"));
  };
  if (dir.empty()) return absl::InvalidArgumentError("output directory is empty");
  if (name.empty() || name.size() > 255) return bad("length must be 1..255");
  if (stage.empty() || stage.size() > 64) return bad("stage id length must be 1..64");
  for (const std::string* s : {&stage, &name}) {
    for (unsigned char c : *s) {
      if (c < 0x20 || c == 0x7f) return bad("control character");
      if (c == '\\') return bad("backslash");
    }
  }
  if (stage.find('/') != std::string::npos || stage == "." || stage == "..") return bad("stage id");
  if (name.front() == '/') return bad("absolute path");
  for (std::string_view seg : Split(name)) {
    if (seg.empty()) return bad("empty path segment");
    if (seg == "." || seg == "..") return bad("'.' or '..' segment");
  }
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return absl::StrCat(d, "/", stage, "/", name);
}

PullAction PlanPull(int64_t local_size, int64_t total_size) {
  if (local_size < 0 || local_size > total_size) return PullAction::kDownload;
  if (local_size == total_size) return PullAction::kVerifyExisting;
  if (local_size == 0) return PullAction::kDownload;
  return PullAction::kResume;
}

int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return 2;
    default:
      return 1;
  }
}

std::string ErrorLine(const absl::Status& s, const std::string& scheduler_addr) {
  if (s.code() == absl::StatusCode::kUnavailable) {
    // gRPC's own text ("failed to connect to all addresses; ...") adds nothing.
    return absl::StrCat("cannot reach scheduler at ", scheduler_addr);
  }
  std::string msg(s.message());
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (msg.empty()) return absl::StatusCodeToString(s.code());
  return msg;
}

}  // namespace topolab::client
