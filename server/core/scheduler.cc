// Scheduler implementation. Every mutation is computed on copies of the
// affected rows (a Txn), written with one Store::Apply, and only then
// installed in memory: a failed store write leaves memory untouched.
#include "server/core/scheduler.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <deque>
#include <utility>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "proto/sha256.h"
#include "proto/status_macros.h"

namespace topolab::server {
namespace {

constexpr int64_t kBytesPerGiB = int64_t{1} << 30;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

}  // namespace

Scheduler::Scheduler(Store& store, const Clock& clock, EventHub& hub,
                     const SchedulerOptions& options, std::shared_ptr<spdlog::logger> logger)
    : store_(store), clock_(clock), hub_(hub), options_(options), log_(std::move(logger)) {
  if (!log_) {
    log_ = std::make_shared<spdlog::logger>("scheduler-core",
                                            std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  uint64_t seed = options_.id_seed;
  if (seed == 0) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(clock_.NowMs());
  }
  rng_.seed(seed);
}

Scheduler::~Scheduler() {
  // Answer whatever is still parked so no RPC is left hanging.
  std::list<Waiter> waiters = std::move(waiters_);
  for (Waiter& w : waiters) w.done(std::optional<LeaseGrant>());
  std::vector<PendingSubmit> pending = std::move(pending_);
  for (PendingSubmit& p : pending) p.done(absl::UnavailableError("scheduler is shutting down"));
}

std::string Scheduler::NewId(const char* prefix) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s%012" PRIx64, prefix, static_cast<uint64_t>(rng_() & 0xffffffffffffULL));
  return buf;
}

// ------------------------------------------------------------------ recovery

absl::Status Scheduler::Recover() {
  const int64_t now = clock_.NowMs();
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, store_.ListWorkers());
  for (WorkerRecord& w : workers) {
    WorkerState ws;
    ws.rec = std::move(w);
    // Give every known worker a full liveness window from the restart.
    ws.last_seen_ms = now;
    workers_[ws.rec.id] = std::move(ws);
  }
  ASSIGN_OR_RETURN(std::vector<JobRecord> active, store_.ListActiveJobs());
  std::set<std::string> experiment_ids;
  for (const JobRecord& j : active) experiment_ids.insert(j.experiment_id);
  int running = 0;
  for (const std::string& eid : experiment_ids) {
    ASSIGN_OR_RETURN(ExperimentRecord exp, store_.GetExperiment(eid));
    ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_.ListJobs(eid));
    ActiveExperiment ae;
    ae.rec = exp;
    ae.rec.config_yaml.clear();  // the core never needs the config text
    ae.rec.config_json.clear();
    for (JobRecord& j : jobs) {
      ae.job_ids.push_back(j.id);
      if (j.state == JobState::kRunning) {
        // The holder may still be alive: give it a full TTL from now. If it
        // died, the lease expires by the TTL and the job is requeued.
        j.lease_expires_at_ms = std::max(j.lease_expires_at_ms, now + options_.lease_ttl_ms);
        ++running;
      }
      InstallJob(j);
      if (j.state == JobState::kRunning && exp.state == ExperimentState::kCancelled) {
        jobs_[j.id].cancel_requested = true;
      }
    }
    experiments_[eid] = std::move(ae);
  }
  log_->info("event=recovered experiments={} active_jobs={} running_jobs={} workers={}",
             experiments_.size(), active.size(), running, workers_.size());
  return absl::OkStatus();
}

// ------------------------------------------------------------------ txn

const JobRecord& Scheduler::View(const Txn& txn, const std::string& job_id) const {
  auto t = txn.jobs.find(job_id);
  if (t != txn.jobs.end()) return t->second;
  return jobs_.at(job_id).rec;
}

JobRecord& Scheduler::Mutable(Txn& txn, const std::string& job_id) {
  auto t = txn.jobs.find(job_id);
  if (t != txn.jobs.end()) return t->second;
  const JobRecord& cur = jobs_.at(job_id).rec;
  txn.experiments.insert(cur.experiment_id);
  return txn.jobs.emplace(job_id, cur).first->second;
}

void Scheduler::DeriveExperimentState(const Txn& txn, const ActiveExperiment& exp,
                                      ExperimentState* state, int64_t* finished_at_ms) const {
  bool all_terminal = true, any_failed = false, any_cancelled = false, any_started = false;
  for (const std::string& jid : exp.job_ids) {
    const JobRecord& j = View(txn, jid);
    if (!IsTerminal(j.state)) all_terminal = false;
    if (j.state == JobState::kFailed) any_failed = true;
    if (j.state == JobState::kCancelled) any_cancelled = true;
    if (j.state == JobState::kRunning || j.started_at_ms > 0) any_started = true;
  }
  const int64_t now = clock_.NowMs();
  *finished_at_ms = exp.rec.finished_at_ms;
  auto forced = txn.forced_state.find(exp.rec.id);
  bool user_cancelled = (forced != txn.forced_state.end() &&
                         forced->second == ExperimentState::kCancelled) ||
                        exp.rec.state == ExperimentState::kCancelled;
  if (user_cancelled) {
    // A user's cancel is the experiment's state from the moment it is asked
    // (so it survives a restart); it is finished once nothing runs.
    *state = ExperimentState::kCancelled;
    if (all_terminal && *finished_at_ms == 0) *finished_at_ms = now;
  } else if (all_terminal) {
    *state = any_failed      ? ExperimentState::kFailed
             : any_cancelled ? ExperimentState::kCancelled
                             : ExperimentState::kSucceeded;
    if (*finished_at_ms == 0) *finished_at_ms = now;
  } else {
    *state = any_started ? ExperimentState::kRunning : ExperimentState::kQueued;
    *finished_at_ms = 0;
  }
}

absl::Status Scheduler::Commit(Txn& txn) {
  StateUpdate update;
  update.jobs.reserve(txn.jobs.size());
  for (const auto& [id, rec] : txn.jobs) update.jobs.push_back(rec);
  update.metrics = txn.metrics;
  for (const std::string& eid : txn.experiments) {
    auto e = experiments_.find(eid);
    if (e == experiments_.end()) continue;
    ExperimentState st;
    int64_t fin;
    DeriveExperimentState(txn, e->second, &st, &fin);
    if (st != e->second.rec.state || fin != e->second.rec.finished_at_ms) {
      update.experiments.push_back({eid, st, fin});
    }
  }
  if (!update.jobs.empty() || !update.experiments.empty() || !update.metrics.empty()) {
    absl::Status s = store_.Apply(update);
    if (!s.ok()) {
      log_->error("event=store_apply_failed jobs={} experiments={} error=\"{}\"",
                  update.jobs.size(), update.experiments.size(), s.ToString());
      return s;
    }
  }
  // Durable: now install in memory.
  bool offer = false;
  for (const JobRecord& rec : update.jobs) {
    const JobRecord& old = jobs_.at(rec.id).rec;
    if (old.state != rec.state) {
      if (rec.state == JobState::kQueued || old.state == JobState::kRunning) offer = true;
      log_->info("event=job_state job={} experiment={} stage={} from={} to={} attempt={} message=\"{}\"",
                 rec.id, rec.experiment_id, rec.stage_id, JobStateName(old.state),
                 JobStateName(rec.state), rec.attempt, rec.message);
    }
    InstallJob(rec);
  }
  for (const auto& [id, flag] : txn.cancel_flags) {
    auto it = jobs_.find(id);
    if (it != jobs_.end()) it->second.cancel_requested = flag;
  }
  for (const StateUpdate::ExperimentChange& c : update.experiments) {
    ExperimentRecord& rec = experiments_.at(c.id).rec;
    if (rec.state != c.state) {
      log_->info("event=experiment_state experiment={} from={} to={}", c.id,
                 ExperimentStateName(rec.state), ExperimentStateName(c.state));
    }
    rec.state = c.state;
    rec.finished_at_ms = c.finished_at_ms;
  }
  for (const std::string& eid : txn.experiments) {
    auto e = experiments_.find(eid);
    if (e != experiments_.end() && IsTerminal(e->second.rec.state)) {
      bool all_terminal = true;
      for (const std::string& jid : e->second.job_ids) {
        if (!IsTerminal(jobs_.at(jid).rec.state)) all_terminal = false;
      }
      if (all_terminal) EraseExperiment(eid);
    }
    hub_.Notify(eid, EventHub::Topic::kChanged);
  }
  if (offer) DispatchWaiters();
  return absl::OkStatus();
}

void Scheduler::InstallJob(const JobRecord& rec) {
  auto it = jobs_.find(rec.id);
  if (it != jobs_.end()) {
    const JobRecord& old = it->second.rec;
    if (old.state == JobState::kQueued) {
      auto q = queues_.find(old.owner);
      if (q != queues_.end()) {
        q->second.erase(QueueKey{-old.priority, old.queued_at_ms, old.id});
        if (q->second.empty()) queues_.erase(q);
      }
    } else if (old.state == JobState::kRunning) {
      if (--running_by_owner_[old.owner] <= 0) running_by_owner_.erase(old.owner);
      lease_expiry_.erase({old.lease_expires_at_ms, old.id});
      auto w = workers_.find(old.worker_id);
      if (w != workers_.end()) w->second.running.erase(old.id);
    }
    it->second.rec = rec;
  } else {
    ActiveJob aj;
    aj.rec = rec;
    jobs_.emplace(rec.id, std::move(aj));
  }
  if (rec.state == JobState::kQueued) {
    queues_[rec.owner].insert(QueueKey{-rec.priority, rec.queued_at_ms, rec.id});
  } else if (rec.state == JobState::kRunning) {
    ++running_by_owner_[rec.owner];
    lease_expiry_.insert({rec.lease_expires_at_ms, rec.id});
    auto w = workers_.find(rec.worker_id);
    if (w != workers_.end()) w->second.running.insert(rec.id);
  }
}

void Scheduler::EraseExperiment(const std::string& experiment_id) {
  auto e = experiments_.find(experiment_id);
  if (e == experiments_.end()) return;
  for (const std::string& jid : e->second.job_ids) jobs_.erase(jid);  // all terminal: no indices
  experiments_.erase(e);
}

void Scheduler::ReleaseDependants(Txn& txn, const std::string& experiment_id) {
  const ActiveExperiment& exp = experiments_.at(experiment_id);
  std::map<std::string, JobState> by_stage;
  for (const std::string& jid : exp.job_ids) {
    const JobRecord& j = View(txn, jid);
    by_stage[j.stage_id] = j.state;
  }
  const int64_t now = clock_.NowMs();
  for (const std::string& jid : exp.job_ids) {
    const JobRecord& j = View(txn, jid);
    if (j.state != JobState::kBlocked) continue;
    bool ready = std::all_of(j.needs.begin(), j.needs.end(), [&](const std::string& need) {
      auto s = by_stage.find(need);
      return s != by_stage.end() && s->second == JobState::kSucceeded;
    });
    if (!ready) continue;
    JobRecord& m = Mutable(txn, jid);
    m.state = JobState::kQueued;
    m.queued_at_ms = now;
  }
}

void Scheduler::CancelDependants(Txn& txn, const std::string& experiment_id,
                                 const std::string& stage_id, const std::string& why) {
  const ActiveExperiment& exp = experiments_.at(experiment_id);
  const int64_t now = clock_.NowMs();
  std::deque<std::pair<std::string, std::string>> todo{{stage_id, why}};
  while (!todo.empty()) {
    auto [stage, reason] = todo.front();
    todo.pop_front();
    for (const std::string& jid : exp.job_ids) {
      const JobRecord& j = View(txn, jid);
      if (j.state != JobState::kBlocked && j.state != JobState::kQueued) continue;
      if (std::find(j.needs.begin(), j.needs.end(), stage) == j.needs.end()) continue;
      JobRecord& m = Mutable(txn, jid);
      m.state = JobState::kCancelled;
      m.message = "need " + Quote(stage) + " " + reason;
      m.finished_at_ms = now;
      todo.emplace_back(m.stage_id, "was cancelled");
    }
  }
}

// ------------------------------------------------------------------ submit

void Scheduler::Submit(NewExperiment e, SubmitCallback done) {
  // Defensive DAG checks: the config validator already rejects these, but the
  // core must never store an experiment whose jobs could block forever.
  if (e.jobs.empty()) {
    done(absl::InvalidArgumentError("stages: an experiment needs at least one stage"));
    return;
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < e.jobs.size(); ++i) {
    const JobRecord& j = e.jobs[i];
    const std::string path = "stages[" + std::to_string(i) + "]";
    if (j.stage_id.empty()) {
      done(absl::InvalidArgumentError(path + ".id: must not be empty"));
      return;
    }
    if (!index.emplace(j.stage_id, i).second) {
      done(absl::InvalidArgumentError(path + ".id: duplicate stage id " + Quote(j.stage_id)));
      return;
    }
    if (j.kind.empty()) {
      done(absl::InvalidArgumentError(path + ".kind: must not be empty"));
      return;
    }
    if (j.max_attempts < 1) {
      done(absl::InvalidArgumentError(path + ".max_attempts: must be >= 1"));
      return;
    }
  }
  std::vector<int> indegree(e.jobs.size(), 0);
  for (size_t i = 0; i < e.jobs.size(); ++i) {
    for (size_t n = 0; n < e.jobs[i].needs.size(); ++n) {
      const std::string& need = e.jobs[i].needs[n];
      if (!index.count(need)) {
        done(absl::InvalidArgumentError("stages[" + std::to_string(i) + "].needs[" +
                                        std::to_string(n) + "]: unknown stage " + Quote(need)));
        return;
      }
      ++indegree[i];
    }
  }
  // Kahn's algorithm: every stage must be reachable from the roots.
  std::vector<size_t> ready;
  for (size_t i = 0; i < e.jobs.size(); ++i)
    if (indegree[i] == 0) ready.push_back(i);
  size_t seen = 0;
  while (!ready.empty()) {
    size_t i = ready.back();
    ready.pop_back();
    ++seen;
    for (size_t k = 0; k < e.jobs.size(); ++k) {
      for (const std::string& need : e.jobs[k].needs) {
        if (need == e.jobs[i].stage_id && --indegree[k] == 0) ready.push_back(k);
      }
    }
  }
  if (seen != e.jobs.size()) {
    for (size_t i = 0; i < e.jobs.size(); ++i) {
      if (indegree[i] > 0) {
        done(absl::InvalidArgumentError("stages[" + std::to_string(i) +
                                        "].needs: dependency cycle through stage " +
                                        Quote(e.jobs[i].stage_id)));
        return;
      }
    }
  }

  const int64_t now = clock_.NowMs();
  std::string id;
  do {
    id = NewId("exp-");
  } while (experiments_.count(id) ||
           std::any_of(pending_.begin(), pending_.end(),
                       [&](const PendingSubmit& p) { return p.experiment.experiment.id == id; }));
  ExperimentRecord& x = e.experiment;
  x.id = id;
  x.state = ExperimentState::kQueued;
  x.created_at_ms = now;
  x.finished_at_ms = 0;
  for (JobRecord& j : e.jobs) {
    j.id = id + "." + j.stage_id;
    j.experiment_id = id;
    j.state = j.needs.empty() ? JobState::kQueued : JobState::kBlocked;
    j.priority = x.priority;
    j.owner = x.owner;
    j.attempt = 0;
    j.fencing_token = 0;
    j.worker_id.clear();
    j.lease_expires_at_ms = 0;
    j.progress = 0;
    j.message.clear();
    j.metrics.clear();
    j.metrics_step = 0;
    j.created_at_ms = now;
    j.queued_at_ms = j.state == JobState::kQueued ? now : 0;
    j.started_at_ms = 0;
    j.finished_at_ms = 0;
  }
  pending_.push_back(PendingSubmit{std::move(e), std::move(done)});
}

void Scheduler::FlushSubmits() {
  if (pending_.empty()) return;
  std::vector<PendingSubmit> batch = std::move(pending_);
  pending_.clear();
  std::vector<NewExperiment> rows;
  rows.reserve(batch.size());
  for (PendingSubmit& p : batch) rows.push_back(std::move(p.experiment));
  absl::Status s = store_.CreateExperiments(rows);
  if (!s.ok()) {
    log_->error("event=submit_failed batch={} error=\"{}\"", rows.size(), s.ToString());
    for (PendingSubmit& p : batch) p.done(s);
    return;
  }
  std::string ids;
  for (size_t i = 0; i < rows.size(); ++i) {
    NewExperiment& ne = rows[i];
    SubmitResult result;
    result.experiment_id = ne.experiment.id;
    ActiveExperiment ae;
    for (const JobRecord& j : ne.jobs) {
      ae.job_ids.push_back(j.id);
      result.job_ids.push_back(j.id);
      InstallJob(j);
    }
    log_->debug("event=submitted experiment={} name={} owner={} priority={} jobs={}",
                ne.experiment.id, ne.experiment.name, ne.experiment.owner,
                ne.experiment.priority, ne.jobs.size());
    if (!ids.empty()) ids += ',';
    ids += ne.experiment.id;
    // The core never needs the (large) config text: keep only the head.
    ae.rec = std::move(ne.experiment);
    ae.rec.config_yaml.clear();
    ae.rec.config_json.clear();
    experiments_[result.experiment_id] = std::move(ae);
    batch[i].done(std::move(result));
  }
  // One line per group commit (a line per submit costs a write each at 5k/s).
  log_->info("event=submitted count={} experiments={}", rows.size(), ids);
  DispatchWaiters();
}

// ------------------------------------------------------------------ cancel

absl::StatusOr<ExperimentRecord> Scheduler::CancelExperiment(const std::string& experiment_id) {
  auto e = experiments_.find(experiment_id);
  if (e == experiments_.end()) {
    ASSIGN_OR_RETURN(ExperimentRecord rec, store_.GetExperiment(experiment_id));
    if (rec.state == ExperimentState::kCancelled) return rec;
    return absl::FailedPreconditionError("experiment " + experiment_id + " already " +
                                         ExperimentStateName(rec.state) +
                                         "; only an unfinished experiment can be cancelled");
  }
  if (e->second.rec.state == ExperimentState::kCancelled) return store_.GetExperiment(experiment_id);
  const int64_t now = clock_.NowMs();
  Txn txn;
  txn.experiments.insert(experiment_id);
  txn.forced_state[experiment_id] = ExperimentState::kCancelled;
  for (const std::string& jid : e->second.job_ids) {
    const JobRecord& j = View(txn, jid);
    if (j.state == JobState::kBlocked || j.state == JobState::kQueued) {
      JobRecord& m = Mutable(txn, jid);
      m.state = JobState::kCancelled;
      m.message = "cancelled by user";
      m.finished_at_ms = now;
    } else if (j.state == JobState::kRunning) {
      txn.cancel_flags[jid] = true;
    }
  }
  RETURN_IF_ERROR(Commit(txn));
  log_->info("event=cancel_requested experiment={} running_jobs={}", experiment_id,
             txn.cancel_flags.size());
  return store_.GetExperiment(experiment_id);
}

// ------------------------------------------------------------------ workers

absl::StatusOr<WorkerRecord> Scheduler::RegisterWorker(WorkerRecord worker) {
  if (worker.job_kinds.empty()) {
    return absl::InvalidArgumentError("job_kinds: a worker must offer at least one job kind");
  }
  for (size_t i = 0; i < worker.job_kinds.size(); ++i) {
    if (worker.job_kinds[i].empty()) {
      return absl::InvalidArgumentError("job_kinds[" + std::to_string(i) + "]: must not be empty");
    }
  }
  if (worker.max_concurrent_jobs < 0) {
    return absl::InvalidArgumentError("max_concurrent_jobs: must be >= 0 (0 means 1), got " +
                                      std::to_string(worker.max_concurrent_jobs));
  }
  if (worker.max_concurrent_jobs == 0) worker.max_concurrent_jobs = 1;
  for (size_t i = 0; i < worker.devices.size(); ++i) {
    const DeviceRecord& d = worker.devices[i];
    if (d.type != "cpu" && d.type != "cuda") {
      return absl::InvalidArgumentError("devices[" + std::to_string(i) +
                                        "].type: must be \"cpu\" or \"cuda\", got \"" + d.type +
                                        "\"");
    }
    if (d.memory_bytes < 0) {
      return absl::InvalidArgumentError("devices[" + std::to_string(i) +
                                        "].memory_bytes: must be >= 0");
    }
  }
  const int64_t now = clock_.NowMs();
  if (worker.id.empty()) {
    do {
      worker.id = NewId("w-");
    } while (workers_.count(worker.id));
  }
  auto it = workers_.find(worker.id);
  worker.registered_at_ms = it != workers_.end() ? it->second.rec.registered_at_ms : now;
  worker.last_seen_ms = now;
  worker.alive = true;
  RETURN_IF_ERROR(store_.UpsertWorker(worker));
  WorkerState& ws = workers_[worker.id];
  ws.rec = worker;
  ws.last_seen_ms = now;
  // A job RUNNING on this worker (e.g. found at recovery before it came back).
  for (const auto& [jid, aj] : jobs_) {
    if (aj.rec.state == JobState::kRunning && aj.rec.worker_id == worker.id) ws.running.insert(jid);
  }
  log_->info("event=worker_registered worker={} host={} kinds={} devices={} max_jobs={}",
             worker.id, worker.host, worker.job_kinds.size(), worker.devices.size(),
             worker.max_concurrent_jobs);
  return worker;
}

void Scheduler::TouchWorker(const std::string& worker_id, int64_t now) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  WorkerState& ws = it->second;
  ws.last_seen_ms = now;
  if (!ws.rec.alive) {
    WorkerRecord rec = ws.rec;
    rec.alive = true;
    rec.last_seen_ms = now;
    absl::Status s = store_.UpsertWorker(rec);
    if (!s.ok()) {
      log_->error("event=worker_update_failed worker={} error=\"{}\"", worker_id, s.ToString());
      return;
    }
    ws.rec = rec;
    log_->info("event=worker_alive worker={}", worker_id);
  }
}

bool Scheduler::Matches(const WorkerState& worker, const JobRecord& job) const {
  const auto& kinds = worker.rec.job_kinds;
  if (std::find(kinds.begin(), kinds.end(), job.kind) == kinds.end()) return false;
  const ResourceRequest& r = job.resources;
  const bool needs_gpu = r.device == "cuda" || r.gpus > 0;
  if (!needs_gpu) return true;  // CPU jobs run on any worker offering the kind
  const int need = std::max(1, r.gpus);
  const int64_t min_bytes = static_cast<int64_t>(std::ceil(r.gpu_memory_gb * kBytesPerGiB));
  int have = 0;
  for (const DeviceRecord& d : worker.rec.devices) {
    if (d.type == "cuda" && d.memory_bytes >= min_bytes) ++have;
  }
  return have >= need;
}

std::optional<std::string> Scheduler::BestJobFor(const WorkerState& worker) const {
  // Candidate order: (−priority, owner's running jobs, queued_at, id).
  using Rank = std::tuple<int, int, int64_t, std::string>;
  std::optional<Rank> best;
  for (const auto& [owner, queue] : queues_) {
    auto r = running_by_owner_.find(owner);
    const int running = r == running_by_owner_.end() ? 0 : r->second;
    for (const QueueKey& key : queue) {
      Rank cand{std::get<0>(key), running, std::get<1>(key), std::get<2>(key)};
      // Keys of one owner ascend, so nothing later in this queue can win.
      if (best && !(cand < *best)) break;
      if (Matches(worker, jobs_.at(std::get<2>(key)).rec)) {
        best = cand;
        break;
      }
    }
  }
  if (!best) return std::nullopt;
  return std::get<3>(*best);
}

absl::StatusOr<std::optional<LeaseGrant>> Scheduler::TryLease(const std::string& worker_id) {
  auto w = workers_.find(worker_id);
  if (w == workers_.end()) return std::optional<LeaseGrant>();
  if (static_cast<int>(w->second.running.size()) >= w->second.rec.max_concurrent_jobs) {
    return std::optional<LeaseGrant>();
  }
  std::optional<std::string> job_id = BestJobFor(w->second);
  if (!job_id) return std::optional<LeaseGrant>();
  const int64_t now = clock_.NowMs();
  absl::StatusOr<JobRecord> claimed =
      store_.ClaimJob(*job_id, worker_id, now, now + options_.lease_ttl_ms);
  if (!claimed.ok()) {
    if (absl::IsFailedPrecondition(claimed.status())) {
      // Memory and store disagree (should not happen): trust the store.
      log_->error("event=claim_conflict job={} error=\"{}\"", *job_id, claimed.status().ToString());
      absl::StatusOr<JobRecord> fresh = store_.GetJob(*job_id);
      if (fresh.ok()) InstallJob(*fresh);
      return std::optional<LeaseGrant>();
    }
    log_->error("event=claim_failed job={} worker={} error=\"{}\"", *job_id, worker_id,
                claimed.status().ToString());
    return claimed.status();
  }
  const JobState old_state = jobs_.at(*job_id).rec.state;
  InstallJob(*claimed);
  log_->info("event=job_state job={} experiment={} stage={} from={} to=running attempt={} "
             "worker={} token={}",
             claimed->id, claimed->experiment_id, claimed->stage_id, JobStateName(old_state),
             claimed->attempt, worker_id, claimed->fencing_token);
  // The experiment may go QUEUED -> RUNNING; a failure here is repaired by
  // the next commit that touches the experiment.
  Txn txn;
  txn.experiments.insert(claimed->experiment_id);
  (void)Commit(txn);

  LeaseGrant grant;
  grant.job = *claimed;
  grant.lease_ttl_ms = options_.lease_ttl_ms;
  for (const std::string& need : claimed->needs) {
    absl::StatusOr<std::vector<ArtifactRecord>> arts =
        store_.ListArtifacts(claimed->experiment_id, need);
    if (!arts.ok()) {
      log_->error("event=list_inputs_failed job={} need={} error=\"{}\"", claimed->id, need,
                  arts.status().ToString());
      continue;
    }
    grant.inputs.insert(grant.inputs.end(), arts->begin(), arts->end());
  }
  if (claimed->attempt > 1) {
    absl::StatusOr<std::vector<ArtifactRecord>> own = store_.ListJobArtifacts(claimed->id);
    if (own.ok()) {
      grant.own_artifacts = std::move(*own);
    } else {
      log_->error("event=list_own_artifacts_failed job={} error=\"{}\"", claimed->id,
                  own.status().ToString());
    }
  }
  return std::optional<LeaseGrant>(std::move(grant));
}

void Scheduler::LeaseJob(const std::string& worker_id, int64_t wait_ms, LeaseCallback done,
                         std::function<bool()> is_cancelled) {
  if (!workers_.count(worker_id)) {
    done(absl::NotFoundError("worker " + worker_id + " is not registered; call RegisterWorker"));
    return;
  }
  const int64_t now = clock_.NowMs();
  TouchWorker(worker_id, now);
  absl::StatusOr<std::optional<LeaseGrant>> r = TryLease(worker_id);
  if (!r.ok() || r->has_value() || wait_ms <= 0) {
    done(std::move(r));
    return;
  }
  Waiter w;
  w.worker_id = worker_id;
  w.deadline_ms = now + std::min(wait_ms, options_.max_lease_wait_ms);
  w.done = std::move(done);
  w.is_cancelled = std::move(is_cancelled);
  waiters_.push_back(std::move(w));
}

void Scheduler::DispatchWaiters() {
  if (dispatching_) return;
  dispatching_ = true;
  bool progress = true;
  while (progress && !waiters_.empty() && !queues_.empty()) {
    progress = false;
    for (auto it = waiters_.begin(); it != waiters_.end() && !queues_.empty();) {
      if (it->is_cancelled && it->is_cancelled()) {
        LeaseCallback done = std::move(it->done);
        it = waiters_.erase(it);
        done(std::optional<LeaseGrant>());
        continue;
      }
      absl::StatusOr<std::optional<LeaseGrant>> r = TryLease(it->worker_id);
      if (!r.ok()) {
        // The store is failing: leave everyone parked; Tick() retries.
        dispatching_ = false;
        return;
      }
      if (r->has_value()) {
        LeaseCallback done = std::move(it->done);
        TouchWorker(it->worker_id, clock_.NowMs());
        it = waiters_.erase(it);
        done(std::move(r));
        progress = true;
        continue;
      }
      ++it;
    }
  }
  dispatching_ = false;
}

// ------------------------------------------------------------------ leases

absl::StatusOr<Scheduler::ActiveJob*> Scheduler::FindLease(const std::string& job_id,
                                                          int64_t fencing_token) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    ASSIGN_OR_RETURN(JobRecord rec, store_.GetJob(job_id));
    return absl::FailedPreconditionError("job " + job_id + " is " + JobStateName(rec.state) +
                                         "; fencing token " + std::to_string(fencing_token) +
                                         " no longer holds a lease");
  }
  const JobRecord& j = it->second.rec;
  if (j.state != JobState::kRunning) {
    return absl::FailedPreconditionError("job " + job_id + " is " + JobStateName(j.state) +
                                         ", not running; fencing token " +
                                         std::to_string(fencing_token) + " is stale");
  }
  if (fencing_token != j.fencing_token) {
    return absl::FailedPreconditionError("stale fencing token " + std::to_string(fencing_token) +
                                         " for job " + job_id + " (current lease has token " +
                                         std::to_string(j.fencing_token) + ")");
  }
  return &it->second;
}

absl::StatusOr<JobRecord> Scheduler::CheckLease(const std::string& job_id,
                                                int64_t fencing_token) const {
  ASSIGN_OR_RETURN(ActiveJob * aj, const_cast<Scheduler*>(this)->FindLease(job_id, fencing_token));
  return aj->rec;
}

absl::StatusOr<bool> Scheduler::Heartbeat(const HeartbeatReport& report) {
  ASSIGN_OR_RETURN(ActiveJob * aj, FindLease(report.job_id, report.fencing_token));
  if (!report.worker_id.empty() && report.worker_id != aj->rec.worker_id) {
    return absl::FailedPreconditionError("job " + report.job_id + " is leased to worker " +
                                         aj->rec.worker_id + ", not " + report.worker_id);
  }
  const int64_t now = clock_.NowMs();
  Txn txn;
  JobRecord& j = Mutable(txn, report.job_id);
  if (std::isfinite(report.progress)) j.progress = std::clamp(report.progress, 0.0, 1.0);
  j.lease_expires_at_ms = now + options_.lease_ttl_ms;
  if (!report.metrics.empty()) {
    for (const auto& [name, value] : report.metrics) {
      j.metrics[name] = value;
      txn.metrics.push_back(MetricPoint{report.job_id, report.step, name, value, now});
    }
    j.metrics_step = report.step;
  }
  const std::string worker_id = j.worker_id;
  RETURN_IF_ERROR(Commit(txn));
  TouchWorker(worker_id, now);
  return aj->cancel_requested;
}

absl::StatusOr<std::vector<LogLineRecord>> Scheduler::AppendLogs(
    const std::string& job_id, int64_t fencing_token, const std::vector<std::string>& lines) {
  ASSIGN_OR_RETURN(ActiveJob * aj, FindLease(job_id, fencing_token));
  if (lines.empty()) return std::vector<LogLineRecord>();
  const std::string experiment_id = aj->rec.experiment_id;
  ASSIGN_OR_RETURN(std::vector<LogLineRecord> written,
                   store_.AppendLogs(job_id, lines, clock_.NowMs()));
  hub_.Notify(experiment_id, EventHub::Topic::kLogs);
  return written;
}

absl::StatusOr<ArtifactRecord> Scheduler::RecordArtifact(const std::string& job_id,
                                                         int64_t fencing_token,
                                                         const std::string& name, int64_t size,
                                                         const std::string& sha256) {
  ASSIGN_OR_RETURN(ActiveJob * aj, FindLease(job_id, fencing_token));
  if (name.empty()) return absl::InvalidArgumentError("name: must not be empty");
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError("sha256: not a lowercase hex SHA-256 digest: \"" + sha256 +
                                      "\"");
  }
  if (size < 0) return absl::InvalidArgumentError("size: must be >= 0");
  ArtifactRecord a;
  a.experiment_id = aj->rec.experiment_id;
  a.job_id = job_id;
  a.stage_id = aj->rec.stage_id;
  a.name = name;
  a.size = size;
  a.sha256 = sha256;
  a.created_at_ms = clock_.NowMs();
  RETURN_IF_ERROR(store_.PutArtifact(a));
  log_->info("event=artifact job={} experiment={} name={} size={} sha256={}", job_id,
             a.experiment_id, name, size, sha256);
  hub_.Notify(a.experiment_id, EventHub::Topic::kChanged);
  return a;
}

absl::Status Scheduler::CompleteJob(const CompletionReport& report) {
  ASSIGN_OR_RETURN(ActiveJob * aj, FindLease(report.job_id, report.fencing_token));
  const int64_t now = clock_.NowMs();
  const bool cancelled = aj->cancel_requested;
  Txn txn;
  JobRecord& j = Mutable(txn, report.job_id);
  for (const auto& [name, value] : report.metrics) {
    j.metrics[name] = value;
    txn.metrics.push_back(MetricPoint{report.job_id, j.metrics_step, name, value, now});
  }
  j.finished_at_ms = now;
  j.lease_expires_at_ms = 0;
  const std::string experiment_id = j.experiment_id, stage_id = j.stage_id;
  if (cancelled) {
    j.state = JobState::kCancelled;
    j.message = report.message.empty() ? "cancelled by user" : "cancelled by user: " + report.message;
    CancelDependants(txn, experiment_id, stage_id, "was cancelled");
  } else if (report.succeeded) {
    j.state = JobState::kSucceeded;
    j.progress = 1.0;
    j.message = report.message;
    ReleaseDependants(txn, experiment_id);
  } else {
    j.state = JobState::kFailed;
    j.message = report.message.empty() ? "job failed (no reason given)" : report.message;
    CancelDependants(txn, experiment_id, stage_id, "failed");
  }
  return Commit(txn);
}

// ------------------------------------------------------------------ sweep

void Scheduler::ExpireLeases(int64_t now) {
  Txn txn;
  for (auto it = lease_expiry_.begin(); it != lease_expiry_.end() && it->first <= now; ++it) {
    const ActiveJob& aj = jobs_.at(it->second);
    JobRecord& j = Mutable(txn, it->second);
    const std::string worker = j.worker_id;
    j.lease_expires_at_ms = 0;
    if (aj.cancel_requested) {
      j.state = JobState::kCancelled;
      j.message = "cancelled by user (lease of worker " + worker + " expired)";
      j.finished_at_ms = now;
      CancelDependants(txn, j.experiment_id, j.stage_id, "was cancelled");
    } else if (j.attempt < j.max_attempts) {
      j.state = JobState::kQueued;
      j.queued_at_ms = now;
      j.worker_id.clear();
      j.message = "lease of worker " + worker + " expired on attempt " + std::to_string(j.attempt) +
                  "; requeued";
    } else {
      j.state = JobState::kFailed;
      j.finished_at_ms = now;
      j.message = "lease expired " + std::to_string(j.attempt) + " times";
      // Copy ids: CancelDependants may grow txn.jobs and move nothing, but keep it simple.
      const std::string eid = j.experiment_id, sid = j.stage_id;
      CancelDependants(txn, eid, sid, "failed");
    }
  }
  if (txn.jobs.empty()) return;
  absl::Status s = Commit(txn);
  if (!s.ok()) log_->error("event=lease_expiry_deferred jobs={} error=\"{}\"", txn.jobs.size(), s.ToString());
}

void Scheduler::CheckWorkers(int64_t now) {
  const int64_t limit = options_.heartbeat_interval_ms * options_.dead_after_missed_heartbeats;
  // A worker parked in a LeaseJob long-poll is connected and waiting for
  // work (its wait may be longer than `limit`; gRPC cancels the call if it
  // goes away), so it is seen now.
  for (const Waiter& w : waiters_) {
    if (w.is_cancelled && w.is_cancelled()) continue;
    auto it = workers_.find(w.worker_id);
    if (it != workers_.end()) it->second.last_seen_ms = now;
  }
  for (auto& [id, ws] : workers_) {
    if (!ws.rec.alive || now - ws.last_seen_ms <= limit) continue;
    WorkerRecord rec = ws.rec;
    rec.alive = false;
    rec.last_seen_ms = ws.last_seen_ms;
    absl::Status s = store_.UpsertWorker(rec);
    if (!s.ok()) {
      log_->error("event=worker_update_failed worker={} error=\"{}\"", id, s.ToString());
      continue;
    }
    ws.rec = rec;
    log_->warn("event=worker_dead worker={} host={} silent_ms={} running_jobs={}", id, rec.host,
               now - ws.last_seen_ms, ws.running.size());
  }
}

void Scheduler::Tick() {
  const int64_t now = clock_.NowMs();
  ExpireLeases(now);
  CheckWorkers(now);
  std::vector<LeaseCallback> expired;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->deadline_ms <= now || (it->is_cancelled && it->is_cancelled())) {
      expired.push_back(std::move(it->done));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (LeaseCallback& done : expired) done(std::optional<LeaseGrant>());
  DispatchWaiters();
}

void Scheduler::ReleaseParkedLeases() {
  std::list<Waiter> waiters = std::move(waiters_);
  waiters_.clear();
  for (Waiter& w : waiters) w.done(std::optional<LeaseGrant>());
}

std::vector<WorkerView> Scheduler::ListWorkers() const {
  std::vector<WorkerView> out;
  out.reserve(workers_.size());
  for (const auto& [id, ws] : workers_) {
    WorkerView v;
    v.record = ws.rec;
    v.record.last_seen_ms = std::max(ws.rec.last_seen_ms, ws.last_seen_ms);
    v.running_job_ids.assign(ws.running.begin(), ws.running.end());
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(),
            [](const WorkerView& a, const WorkerView& b) { return a.record.id < b.record.id; });
  return out;
}

std::optional<JobRecord> Scheduler::ActiveJobForTest(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.rec;
}

bool Scheduler::CancelRequestedForTest(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second.cancel_requested;
}

}  // namespace topolab::server
