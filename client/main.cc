// `topolab`: the lab's command line for experiments — parse arguments, make
// one call (client/commands.h), print (client/format.h).
//
// Exit codes: 0 ok; 1 the operation failed (a job failed, the scheduler is
// unreachable, a download did not verify); 2 bad usage or input (unknown
// flag, invalid config, unknown experiment id).
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/format.h"
#include "proto/config/experiment_config.h"
#include "proto/config/schema.h"

namespace topolab::client {
namespace {

struct Globals {
  std::string scheduler = "127.0.0.1:7070";
  std::string output = "table";
  bool json() const { return output == "json"; }
  ClientOptions Options() const {
    ClientOptions o;
    o.address = scheduler;
    if (const char* t = std::getenv("TOPOLAB_TOKEN"); t && *t) o.token = t;
    return o;
  }
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Prints one error line on stderr and returns the exit code for it.
int Fail(const absl::Status& s, const Globals& g) {
  std::fprintf(stderr, "topolab: error: %s\n", ErrorLine(s, g.scheduler).c_str());
  return ExitCodeFor(s);
}

void Print(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void PrintJson(const nlohmann::ordered_json& j, bool pretty = true) {
  Print((pretty ? j.dump(2) : j.dump()) + "\n");
}

std::string CurrentUser() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_name) return pw->pw_name;
  return "";
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<config::ExperimentSpec> ValidateFile(const std::string& path, bool check_paths) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  config::ParseOptions o;
  o.default_owner = CurrentUser();
  o.check_paths = check_paths;
  auto spec = config::ParseExperimentYaml(*text, o);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", spec.status().message()));
  }
  return spec;
}

// Drops the (large) config copies from a snapshot for streaming JSON output.
v1::Experiment Slim(v1::Experiment e) {
  e.clear_config_yaml();
  e.clear_config_json();
  return e;
}

// ------------------------------------------------------------------ watch

// Follows an experiment until it is terminal. Returns 0 if it succeeded,
// 1 if it failed or was cancelled (or the stream broke for good).
int WatchUntilDone(SchedulerClient& client, const std::string& id, const Globals& g) {
  const bool tty = !g.json() && isatty(STDOUT_FILENO) && std::getenv("TERM") &&
                   std::string(std::getenv("TERM")) != "dumb";
  size_t drawn = 0;
  std::map<std::string, std::string> last_key;  // job -> what was last printed
  v1::ExperimentState last_state = v1::EXPERIMENT_STATE_UNSPECIFIED;
  auto on_event = [&](const v1::Experiment& e) {
    if (g.json()) {
      PrintJson(ToJson(Slim(e)), false);
      return;
    }
    std::vector<std::string> lines = WatchLines(e, NowMs());
    if (tty) {
      std::string out;
      if (drawn > 0) absl::StrAppend(&out, "\033[", drawn, "A");
      for (const auto& l : lines) absl::StrAppend(&out, "\r\033[2K", l, "\n");
      drawn = lines.size();
      Print(out);
      return;
    }
    // Plain output: a line when the experiment's state changes, and one per
    // job when its state or attempt changes or it advances 10 points.
    std::string out;
    if (e.state() != last_state) {
      absl::StrAppend(&out, lines[0], "\n");
      last_state = e.state();
    }
    size_t w = 0;
    for (const auto& j : e.jobs()) w = std::max(w, j.stage_id().size());
    for (const auto& j : e.jobs()) {
      const std::string key = absl::StrCat(j.state(), "/", j.attempt(), "/",
                                           static_cast<int>(j.progress() * 10 + 1e-9));
      if (last_key[j.stage_id()] == key) continue;
      last_key[j.stage_id()] = key;
      absl::StrAppend(&out, "  ", JobProgressLine(j, w), "\n");
    }
    Print(out);
  };

  v1::Experiment last;
  bool seen_any = false;
  // Set while the stream is broken; cleared by every snapshot received.
  std::optional<std::chrono::steady_clock::time_point> broken_since;
  for (;;) {
    auto r = client.Watch(id, [&](const v1::Experiment& e) {
      seen_any = true;
      broken_since.reset();
      last = e;
      on_event(e);
    });
    if (r.ok() && IsTerminal(r->state())) break;
    // The stream broke (scheduler restarting?) or ended early: once the
    // experiment is known to exist, reconnect for up to a minute.
    const bool retryable = seen_any && (r.ok() || r.status().code() == absl::StatusCode::kUnavailable);
    if (!retryable) return Fail(r.status(), g);
    const auto now = std::chrono::steady_clock::now();
    if (!broken_since) broken_since = now;
    if (now - *broken_since > std::chrono::seconds(60)) {
      return Fail(r.ok() ? absl::UnavailableError("watch ended before the experiment finished") : r.status(), g);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (last.state() == v1::EXPERIMENT_SUCCEEDED) {
    if (!tty && !g.json()) Print(absl::StrCat(last.id(), " SUCCEEDED\n"));
    return 0;
  }
  std::string why;
  for (const auto& j : last.jobs()) {
    if (j.state() == v1::JOB_FAILED) {
      why = absl::StrCat(": stage ", j.stage_id(), " failed", j.message().empty() ? "" : ": ", j.message());
      break;
    }
  }
  std::fprintf(stderr, "topolab: experiment %s %s%s\n", last.id().c_str(),
               ExperimentStateName(last.state()).c_str(), why.c_str());
  return 1;
}

// ------------------------------------------------------------------ commands

int CmdSubmit(const Globals& g, const std::string& file, bool wait) {
  auto spec = ValidateFile(file, /*check_paths=*/false);
  if (!spec.ok()) return Fail(spec.status(), g);
  auto text = ReadFile(file);
  if (!text.ok()) return Fail(text.status(), g);
  SchedulerClient client(g.Options());
  auto r = client.Submit(*text, CurrentUser());
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    PrintJson(ToJson(*r), false);
  } else {
    Print(r->experiment_id() + "\n");
  }
  if (!wait) return 0;
  return WatchUntilDone(client, r->experiment_id(), g);
}

int CmdLs(const Globals& g, const std::string& name, const std::string& owner, const std::string& state,
          int limit) {
  v1::ListExperimentsRequest req;
  req.set_name(name);
  req.set_owner(owner);
  if (!state.empty()) {
    auto s = ParseExperimentState(state);
    if (!s.ok()) return Fail(s.status(), g);
    req.set_state(*s);
  }
  SchedulerClient client(g.Options());
  auto r = client.ListExperiments(req, limit);
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& e : *r) arr.push_back(ToJson(Slim(e)));
    PrintJson(arr);
  } else {
    Print(ExperimentsTable(*r, NowMs()));
  }
  return 0;
}

int CmdShow(const Globals& g, const std::string& id) {
  SchedulerClient client(g.Options());
  auto r = client.GetExperiment(id);
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    PrintJson(ToJson(*r));
  } else {
    Print(ExperimentDetail(*r, NowMs()));
  }
  return 0;
}

int CmdLogs(const Globals& g, const std::string& id, const std::string& stage, bool follow) {
  SchedulerClient client(g.Options());
  absl::Status s = client.StreamLogs(id, stage, follow, [&](const v1::LogLine& l) {
    if (g.json()) {
      PrintJson(ToJson(l), false);
    } else if (!stage.empty()) {
      Print(l.text() + "\n");
    } else {
      Print(absl::StrCat("[", l.stage_id(), "] ", l.text(), "\n"));
    }
  });
  if (!s.ok()) return Fail(s, g);
  return 0;
}

int CmdCancel(const Globals& g, const std::string& id) {
  SchedulerClient client(g.Options());
  auto r = client.CancelExperiment(id);
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    PrintJson(ToJson(Slim(*r)));
  } else {
    Print(absl::StrCat(r->id(), " ", ExperimentStateName(r->state()), "\n"));
  }
  return 0;
}

int CmdArtifacts(const Globals& g, const std::string& id, const std::string& stage) {
  SchedulerClient client(g.Options());
  auto r = client.ListArtifacts(id, stage);
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& a : *r) arr.push_back(ToJson(a));
    PrintJson(arr);
  } else {
    Print(ArtifactsTable(*r));
  }
  return 0;
}

int CmdPull(const Globals& g, const std::string& id, std::string dir, const std::string& glob) {
  if (dir.empty()) dir = "./results/" + id;
  SchedulerClient client(g.Options());
  auto arts = client.ListArtifacts(id, "");
  if (!arts.ok()) return Fail(arts.status(), g);
  std::vector<v1::Artifact> selected;
  for (const auto& a : *arts) {
    if (ArtifactSelected(glob, a)) selected.push_back(a);
  }
  if (selected.empty()) {
    if (!glob.empty()) {
      std::fprintf(stderr, "topolab: error: no artifact of %s matches \"%s\" (%zu artifacts)\n", id.c_str(),
                   glob.c_str(), arts->size());
      return 1;
    }
    if (g.json()) {
      PrintJson(nlohmann::ordered_json::array());
    } else {
      Print(absl::StrCat(id, " has no artifacts yet\n"));
    }
    return 0;
  }
  int failures = 0;
  int64_t total = 0;
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& a : selected) {
    const std::string label = absl::StrCat(a.stage_id(), "/", a.name());
    auto path = SafeArtifactPath(dir, a.stage_id(), a.name());
    if (!path.ok()) {
      std::fprintf(stderr, "topolab: error: %s\n", ErrorLine(path.status(), g.scheduler).c_str());
      ++failures;
      continue;
    }
    auto r = client.PullArtifact(a, *path);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kUnavailable) return Fail(r.status(), g);
      std::fprintf(stderr, "topolab: error: %s\n", ErrorLine(r.status(), g.scheduler).c_str());
      ++failures;
      continue;
    }
    total += a.size();
    const char* outcome = r->outcome == PullResult::kUpToDate  ? "up to date"
                          : r->outcome == PullResult::kResumed ? "resumed"
                                                               : "downloaded";
    if (g.json()) {
      nlohmann::ordered_json j = ToJson(a);
      j["path"] = *path;
      j["outcome"] = outcome;
      arr.push_back(std::move(j));
    } else {
      Print(absl::StrCat("  ", label, "  ", FormatBytes(a.size()), "  ", outcome, "\n"));
    }
  }
  if (g.json()) {
    PrintJson(arr);
  } else {
    Print(absl::StrCat(selected.size() - failures, " artifacts (", FormatBytes(total), ", sha256 verified) in ", dir,
                       "\n"));
  }
  return failures > 0 ? 1 : 0;
}

int CmdCompare(const Globals& g, const std::vector<std::string>& ids) {
  SchedulerClient client(g.Options());
  std::vector<v1::Experiment> exps;
  for (const auto& id : ids) {
    auto r = client.GetExperiment(id);
    if (!r.ok()) return Fail(r.status(), g);
    exps.push_back(std::move(*r));
  }
  if (g.json()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& e : exps) arr.push_back(ToJson(e));
    PrintJson(arr);
  } else {
    Print(CompareTable(exps));
  }
  return 0;
}

int CmdWorkers(const Globals& g) {
  SchedulerClient client(g.Options());
  auto r = client.ListWorkers();
  if (!r.ok()) return Fail(r.status(), g);
  if (g.json()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& w : *r) arr.push_back(ToJson(w));
    PrintJson(arr);
  } else {
    Print(WorkersTable(*r, NowMs()));
  }
  return 0;
}

int CmdValidate(const Globals& g, const std::string& file, bool check_paths, bool print) {
  auto spec = ValidateFile(file, check_paths);
  if (!spec.ok()) return Fail(spec.status(), g);
  if (g.json() || print) {
    Print(spec->normalized.dump(2) + "\n");
    return 0;
  }
  std::vector<std::string> ids;
  for (const auto& s : spec->stages) ids.push_back(s.id + "(" + s.kind + ")");
  Print(absl::StrCat(file, ": ok: experiment \"", spec->name, "\", ", spec->stages.size(), " stages: ",
                     absl::StrJoin(ids, " "), "\nsha256:", spec->hash, "\n"));
  return 0;
}

int CmdSchema(const Globals& g, const std::string& kind) {
  using namespace topolab::config;
  std::string out;
  if (kind.empty()) {
    absl::StrAppend(&out, "experiment:\n", DescribeFields(ExperimentFields(), 2));
    absl::StrAppend(&out, DescribeFields({ResourcesSchema(), ModelSchema(), DataSchema()}, 2));
    absl::StrAppend(&out, "  stages: list of stages, each:\n", DescribeFields(StageCommonFields(), 4));
    absl::StrAppend(&out, "    model, data, resources: override the experiment's (merged key by key)\n");
    absl::StrAppend(&out, "\nkinds (topolab schema KIND for their keys): ",
                    absl::StrJoin(KnownJobKinds(), ", "), "\n");
  } else {
    const KindSchema* k = FindKind(kind);
    if (k == nullptr) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("unknown kind \"", kind, "\" (known: ",
                                                          absl::StrJoin(KnownJobKinds(), ", "), ")")),
                  g);
    }
    absl::StrAppend(&out, "kind: ", k->kind, "  -- ", k->doc, "\n", DescribeFields(k->fields, 2));
  }
  Print(out);
  return 0;
}

int Main(int argc, char** argv) {
  Globals g;
  if (const char* env = std::getenv("TOPOLAB_SCHEDULER"); env && *env) g.scheduler = env;

  CLI::App app{"topolab: submit, follow and fetch topographic vision experiments"};
  app.require_subcommand(1);
  app.add_option("--scheduler", g.scheduler, "scheduler address HOST:PORT (env TOPOLAB_SCHEDULER)")
      ->capture_default_str();
  app.add_option("--output,-O", g.output, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  std::string file, id, stage, name, owner, state, dir, glob, kind;
  bool wait = false, follow = false, check_paths = false, print = false;
  int limit = 20;

  auto* submit = app.add_subcommand("submit", "validate FILE locally, submit it, print the experiment id");
  submit->add_option("FILE", file, "experiment YAML")->required();
  submit->add_flag("--wait,-w", wait, "follow progress until done; exit 1 if it failed");

  auto* ls = app.add_subcommand("ls", "list experiments, newest first");
  ls->add_option("--name", name, "only this name");
  ls->add_option("--owner", owner, "only this owner");
  ls->add_option("--state", state, "queued|running|succeeded|failed|cancelled");
  ls->add_option("--limit,-n", limit, "at most N")->check(CLI::Range(1, 100000))->capture_default_str();

  auto* show = app.add_subcommand("show", "an experiment and its jobs");
  show->add_option("ID", id, "experiment id")->required();

  auto* watch = app.add_subcommand("watch", "live progress until done; exit 1 if it failed or was cancelled");
  watch->add_option("ID", id, "experiment id")->required();

  auto* logs = app.add_subcommand("logs", "print job logs");
  logs->add_option("ID", id, "experiment id")->required();
  logs->add_option("--job,-j", stage, "only this stage");
  logs->add_flag("--follow,-f", follow, "keep streaming until the experiment ends");

  auto* cancel = app.add_subcommand("cancel", "cancel an experiment");
  cancel->add_option("ID", id, "experiment id")->required();

  auto* artifacts = app.add_subcommand("artifacts", "list an experiment's artifacts");
  artifacts->add_option("ID", id, "experiment id")->required();
  artifacts->add_option("--job,-j", stage, "only this stage");

  auto* pull = app.add_subcommand("pull", "download artifacts to DIR/<stage>/<name>, verifying SHA-256");
  pull->add_option("ID", id, "experiment id")->required();
  pull->add_option("-o,--out", dir, "output directory (default ./results/<ID>)");
  pull->add_option("--artifact,-a", glob, "only artifacts whose name or stage/name matches this glob");

  std::vector<std::string> ids;
  auto* compare = app.add_subcommand("compare", "settings that differ and metrics, side by side");
  compare->add_option("ID", ids, "two or more experiment ids")->required()->expected(2, 1000);

  auto* workers = app.add_subcommand("workers", "list workers");

  auto* validate = app.add_subcommand("validate", "check an experiment file locally (no scheduler)");
  validate->add_option("FILE", file, "experiment YAML")->required();
  validate->add_flag("--check-paths", check_paths, "also check that data paths exist here");
  validate->add_flag("--print,-p", print, "print the normalised JSON");

  auto* schema = app.add_subcommand("schema", "describe the experiment keys (of one KIND)");
  schema->add_option("KIND", kind, "job kind");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    // CLI11 says "A subcommand is required" for a mistyped command name.
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.empty() || a[0] == '-') {
        if (a == "--scheduler" || a == "--output" || a == "-O") ++i;  // skip the flag's value
        continue;
      }
      if (app.get_subcommands([&](const CLI::App* c) { return c->get_name() == a; }).empty()) {
        msg = "unknown command \"" + a + "\"";
      }
      break;
    }
    std::fprintf(stderr, "topolab: error: %s\nRun 'topolab --help' for usage.\n", msg.c_str());
    return 2;
  }

  if (submit->parsed()) return CmdSubmit(g, file, wait);
  if (ls->parsed()) return CmdLs(g, name, owner, state, limit);
  if (show->parsed()) return CmdShow(g, id);
  if (watch->parsed()) {
    SchedulerClient client(g.Options());
    return WatchUntilDone(client, id, g);
  }
  if (logs->parsed()) return CmdLogs(g, id, stage, follow);
  if (cancel->parsed()) return CmdCancel(g, id);
  if (artifacts->parsed()) return CmdArtifacts(g, id, stage);
  if (pull->parsed()) return CmdPull(g, id, dir, glob);
  if (compare->parsed()) return CmdCompare(g, ids);
  if (workers->parsed()) return CmdWorkers(g);
  if (validate->parsed()) return CmdValidate(g, file, check_paths, print);
  if (schema->parsed()) return CmdSchema(g, kind);
  return 2;
}

}  // namespace
}  // namespace topolab::client

int main(int argc, char** argv) {
  try {
    return topolab::client::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "topolab: error: %s\n", e.what());
    return 1;
  }
}
