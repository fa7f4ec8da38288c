// SqliteStore. Why things are the way they are:
//  - One write connection behind a mutex: SQLite allows one writer at a time
//    anyway, and BEGIN IMMEDIATE takes the write lock up front so a
//    transaction never fails half-way with SQLITE_BUSY on lock upgrade.
//  - Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT)
//    and reset after each use by Stmt's destructor.
//  - Rows are mapped by fixed column lists (kJobColumns, ...) so every SELECT
//    and RETURNING reads the same layout.
//  - Strings are bound SQLITE_TRANSIENT: bound values are often temporaries.
#include "server/store/sqlite_store.h"

#include <sqlite3.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/status_macros.h"
#include "server/store/store_checks.h"

namespace topolab::server {
namespace {

using Json = nlohmann::json;

// Maps an SQLite result code to the most specific absl code.
absl::Status SqliteError(int rc, sqlite3* db, absl::string_view what, const std::string& path) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = absl::StrCat(what, ": ", detail, " (database ", path, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return absl::AlreadyExistsError(msg);
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return absl::NotFoundError(msg);
      return absl::InvalidArgumentError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// A cached prepared statement in use; resets it (and drops bindings) when it
// goes out of scope so the cache can hand it out again.
class Stmt {
 public:
  Stmt(sqlite3_stmt* stmt, sqlite3* db, const std::string* path) : stmt_(stmt), db_(db), path_(path) {}
  Stmt(Stmt&& o) noexcept
      : stmt_(std::exchange(o.stmt_, nullptr)), db_(o.db_), path_(o.path_), bind_rc_(o.bind_rc_) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  void Bind(int i, int64_t v) { Check(sqlite3_bind_int64(stmt_, i, v)); }
  void Bind(int i, int v) { Check(sqlite3_bind_int64(stmt_, i, v)); }
  void Bind(int i, bool v) { Check(sqlite3_bind_int64(stmt_, i, v ? 1 : 0)); }
  // SQLite has no NaN: it is stored as NULL and read back as NaN.
  void Bind(int i, double v) {
    Check(std::isnan(v) ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_double(stmt_, i, v));
  }
  void Bind(int i, std::string_view v) {
    // A null data pointer would bind SQL NULL; an empty string must stay "".
    Check(sqlite3_bind_text64(stmt_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
  }
  void Bind(int i, const char* v) { Bind(i, std::string_view(v)); }
  void Bind(int i, const std::string& v) { Bind(i, std::string_view(v)); }

  // True if a row is available, false when done.
  absl::StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(bind_rc_, db_, "bind", *path_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(sqlite3_extended_errcode(db_), db_, Sql(), *path_);
  }
  // Runs a statement that returns no rows (or whose rows are not needed).
  absl::Status Run() {
    while (true) {
      ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return absl::OkStatus();
    }
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(stmt_, col);
  }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  std::string Sql() const {
    const char* sql = sqlite3_sql(stmt_);
    std::string s = sql != nullptr ? sql : "statement";
    if (s.size() > 60) s = s.substr(0, 60) + "...";
    return s;
  }

  sqlite3_stmt* stmt_;
  sqlite3* db_;
  const std::string* path_;
  int bind_rc_ = SQLITE_OK;
};

// --- JSON columns. Invalid UTF-8 in names is replaced (U+FFFD) rather than
// failing; names arrive through protobuf strings, which are UTF-8 already.

std::string DumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string EncodeStrings(const std::vector<std::string>& v) {
  if (v.empty()) return "[]";
  return DumpJson(Json(v));
}

absl::StatusOr<std::vector<std::string>> DecodeStrings(const std::string& text, absl::string_view what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return absl::DataLossError(absl::StrCat(what, ": not a JSON array: ", text));
  std::vector<std::string> out;
  for (const Json& e : j) {
    if (!e.is_string()) return absl::DataLossError(absl::StrCat(what, ": non-string element in ", text));
    out.push_back(e.get<std::string>());
  }
  return out;
}

// JSON has no NaN or infinity; those are stored as the strings "nan", "inf",
// "-inf" so a diverged loss reads back as what it was.
std::string EncodeMetrics(const std::map<std::string, double>& m) {
  if (m.empty()) return "{}";
  Json j = Json::object();
  for (const auto& [name, v] : m) {
    if (std::isnan(v)) {
      j[name] = "nan";
    } else if (std::isinf(v)) {
      j[name] = v > 0 ? "inf" : "-inf";
    } else {
      j[name] = v;
    }
  }
  return DumpJson(j);
}

absl::StatusOr<std::map<std::string, double>> DecodeMetrics(const std::string& text, absl::string_view what) {
  std::map<std::string, double> out;
  if (text == "{}") return out;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError(absl::StrCat(what, ": not a JSON object: ", text));
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Json& v = it.value();
    if (v.is_number()) {
      out[it.key()] = v.get<double>();
    } else if (v == "nan") {
      out[it.key()] = std::numeric_limits<double>::quiet_NaN();
    } else if (v == "inf") {
      out[it.key()] = std::numeric_limits<double>::infinity();
    } else if (v == "-inf") {
      out[it.key()] = -std::numeric_limits<double>::infinity();
    } else {
      return absl::DataLossError(absl::StrCat(what, ": metric ", it.key(), " is not a number"));
    }
  }
  return out;
}

std::string EncodeDevices(const std::vector<DeviceRecord>& devices) {
  Json j = Json::array();
  for (const DeviceRecord& d : devices) {
    j.push_back({{"type", d.type}, {"name", d.name}, {"memory_bytes", d.memory_bytes}});
  }
  return DumpJson(j);
}

absl::StatusOr<std::vector<DeviceRecord>> DecodeDevices(const std::string& text, absl::string_view what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return absl::DataLossError(absl::StrCat(what, ": not a JSON array: ", text));
  std::vector<DeviceRecord> out;
  for (const Json& e : j) {
    if (!e.is_object() || !e.contains("type") || !e["type"].is_string() || !e.contains("name") ||
        !e["name"].is_string() || !e.contains("memory_bytes") || !e["memory_bytes"].is_number_integer()) {
      return absl::DataLossError(absl::StrCat(what, ": malformed device in ", text));
    }
    DeviceRecord d;
    d.type = e["type"].get<std::string>();
    d.name = e["name"].get<std::string>();
    d.memory_bytes = e["memory_bytes"].get<int64_t>();
    out.push_back(std::move(d));
  }
  return out;
}

// --- row layouts

constexpr const char* kExperimentColumns =
    "id, name, owner, priority, state, config_yaml, config_json, config_hash, created_at_ms, "
    "finished_at_ms";

absl::StatusOr<ExperimentRecord> ReadExperiment(const Stmt& s) {
  ExperimentRecord x;
  x.id = s.Text(0);
  x.name = s.Text(1);
  x.owner = s.Text(2);
  x.priority = static_cast<int>(s.Int(3));
  std::string state = s.Text(4);
  std::optional<ExperimentState> parsed = ParseExperimentState(state);
  if (!parsed) {
    return absl::DataLossError(absl::StrCat("experiment ", x.id, " has unknown state '", state, "'"));
  }
  x.state = *parsed;
  x.config_yaml = s.Text(5);
  x.config_json = s.Text(6);
  x.config_hash = s.Text(7);
  x.created_at_ms = s.Int(8);
  x.finished_at_ms = s.Int(9);
  return x;
}

constexpr const char* kJobColumns =
    "id, experiment_id, stage_id, kind, state, priority, owner, device, gpus, gpu_memory_gb, "
    "needs_json, spec_json, attempt, max_attempts, fencing_token, worker_id, lease_expires_at_ms, "
    "progress, message, metrics_json, metrics_step, created_at_ms, queued_at_ms, started_at_ms, "
    "finished_at_ms";

absl::StatusOr<JobRecord> ReadJob(const Stmt& s) {
  JobRecord j;
  j.id = s.Text(0);
  j.experiment_id = s.Text(1);
  j.stage_id = s.Text(2);
  j.kind = s.Text(3);
  std::string state = s.Text(4);
  std::optional<JobState> parsed = ParseJobState(state);
  if (!parsed) return absl::DataLossError(absl::StrCat("job ", j.id, " has unknown state '", state, "'"));
  j.state = *parsed;
  j.priority = static_cast<int>(s.Int(5));
  j.owner = s.Text(6);
  j.resources.device = s.Text(7);
  j.resources.gpus = static_cast<int>(s.Int(8));
  j.resources.gpu_memory_gb = s.Real(9);
  ASSIGN_OR_RETURN(j.needs, DecodeStrings(s.Text(10), absl::StrCat("job ", j.id, " needs")));
  j.spec_json = s.Text(11);
  j.attempt = static_cast<int>(s.Int(12));
  j.max_attempts = static_cast<int>(s.Int(13));
  j.fencing_token = s.Int(14);
  j.worker_id = s.Text(15);
  j.lease_expires_at_ms = s.Int(16);
  j.progress = s.Real(17);
  j.message = s.Text(18);
  ASSIGN_OR_RETURN(j.metrics, DecodeMetrics(s.Text(19), absl::StrCat("job ", j.id, " metrics")));
  j.metrics_step = s.Int(20);
  j.created_at_ms = s.Int(21);
  j.queued_at_ms = s.Int(22);
  j.started_at_ms = s.Int(23);
  j.finished_at_ms = s.Int(24);
  return j;
}

// Binds the mutable job fields (kind .. finished_at_ms) to ?first, ?first+1, ...
void BindJobFields(Stmt& s, int first, const JobRecord& j) {
  int i = first;
  s.Bind(i++, j.kind);
  s.Bind(i++, JobStateName(j.state));
  s.Bind(i++, j.priority);
  s.Bind(i++, j.owner);
  s.Bind(i++, j.resources.device);
  s.Bind(i++, j.resources.gpus);
  s.Bind(i++, j.resources.gpu_memory_gb);
  s.Bind(i++, EncodeStrings(j.needs));
  s.Bind(i++, j.spec_json);
  s.Bind(i++, j.attempt);
  s.Bind(i++, j.max_attempts);
  s.Bind(i++, j.fencing_token);
  s.Bind(i++, j.worker_id);
  s.Bind(i++, j.lease_expires_at_ms);
  s.Bind(i++, j.progress);
  s.Bind(i++, j.message);
  s.Bind(i++, EncodeMetrics(j.metrics));
  s.Bind(i++, j.metrics_step);
  s.Bind(i++, j.created_at_ms);
  s.Bind(i++, j.queued_at_ms);
  s.Bind(i++, j.started_at_ms);
  s.Bind(i++, j.finished_at_ms);
}
constexpr int kJobFieldCount = 22;

constexpr const char* kInsertJob =
    "INSERT INTO jobs (id, experiment_id, stage_id, ordinal, kind, state, priority, owner, device, "
    "gpus, gpu_memory_gb, needs_json, spec_json, attempt, max_attempts, fencing_token, worker_id, "
    "lease_expires_at_ms, progress, message, metrics_json, metrics_step, created_at_ms, queued_at_ms, "
    "started_at_ms, finished_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
    "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

constexpr const char* kUpdateJob =
    "UPDATE jobs SET kind = ?1, state = ?2, priority = ?3, owner = ?4, device = ?5, gpus = ?6, "
    "gpu_memory_gb = ?7, needs_json = ?8, spec_json = ?9, attempt = ?10, max_attempts = ?11, "
    "fencing_token = ?12, worker_id = ?13, lease_expires_at_ms = ?14, progress = ?15, message = ?16, "
    "metrics_json = ?17, metrics_step = ?18, created_at_ms = ?19, queued_at_ms = ?20, "
    "started_at_ms = ?21, finished_at_ms = ?22 WHERE id = ?23 AND experiment_id = ?24 AND "
    "stage_id = ?25";

constexpr const char* kArtifactColumns =
    "experiment_id, job_id, stage_id, name, size, sha256, created_at_ms";

ArtifactRecord ReadArtifact(const Stmt& s) {
  ArtifactRecord a;
  a.experiment_id = s.Text(0);
  a.job_id = s.Text(1);
  a.stage_id = s.Text(2);
  a.name = s.Text(3);
  a.size = s.Int(4);
  a.sha256 = s.Text(5);
  a.created_at_ms = s.Int(6);
  return a;
}

LogLineRecord ReadLogLine(const Stmt& s) {
  LogLineRecord l;
  l.id = s.Int(0);
  l.job_id = s.Text(1);
  l.stage_id = s.Text(2);
  l.seq = s.Int(3);
  l.ts_ms = s.Int(4);
  l.text = s.Text(5);
  return l;
}

absl::Status JobNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
}
absl::Status ExperimentNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("experiment ", id, " not found"));
}

bool IsMemoryPath(const std::string& path) { return path.empty() || path == ":memory:"; }

}  // namespace

// One sqlite3 handle and its statement cache. Used by one thread at a time
// (the store's mutexes and reader pool guarantee it), hence SQLITE_OPEN_NOMUTEX.
class SqliteStore::Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool in_memory,
                                                          int busy_timeout_ms, bool reader) {
    static std::once_flag global_config;
    std::call_once(global_config, [] {
      // SQLite's allocation statistics take a global mutex on every malloc;
      // nothing here reads them. Only possible before SQLite initialises, so a
      // failure (another component initialised it first) is harmless.
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    });
    std::unique_ptr<Connection> c(new Connection(path));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (!reader) flags |= SQLITE_OPEN_CREATE;
    if (in_memory) flags |= SQLITE_OPEN_MEMORY;
    int rc = sqlite3_open_v2(in_memory ? ":memory:" : path.c_str(), &c->db_, flags, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, c->db_, "cannot open database", c->path_);
    sqlite3_extended_result_codes(c->db_, 1);
    sqlite3_busy_timeout(c->db_, busy_timeout_ms);
    if (!in_memory && !reader) {
      // WAL is a property of the file: set once by the writer, kept by readers.
      ASSIGN_OR_RETURN(Stmt s, c->Prepare("PRAGMA journal_mode = WAL"));
      ASSIGN_OR_RETURN(bool row, s.Step());
      std::string mode = row ? s.Text(0) : "";
      if (mode != "wal") {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot switch database ", path, " to WAL mode (journal_mode is '", mode, "')"));
      }
    }
    // synchronous=NORMAL in WAL mode: commits are not fsynced, checkpoints are
    // (see the header for what that guarantees). journal_size_limit truncates
    // the WAL file back to 64 MiB after a checkpoint so it does not stay huge.
    RETURN_IF_ERROR(c->Exec(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;"));
    if (reader) RETURN_IF_ERROR(c->Exec("PRAGMA query_only = ON;"));
    return c;
  }

  ~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  absl::StatusOr<Stmt> Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return Stmt(it->second, db_, &path_);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()) + 1,
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, absl::StrCat("cannot prepare '", sql, "'"), path_);
    cache_.emplace(sql, stmt);
    return Stmt(stmt, db_, &path_);
  }

  // Runs a script of one or more statements (not cached).
  absl::Status Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return absl::OkStatus();
    std::string detail = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    absl::Status s = SqliteError(sqlite3_extended_errcode(db_), db_, "exec", path_);
    return absl::Status(s.code(), absl::StrCat(detail, " (database ", path_, ")"));
  }

  absl::StatusOr<int> UserVersion() {
    ASSIGN_OR_RETURN(Stmt s, Prepare("PRAGMA user_version"));
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::InternalError(absl::StrCat("PRAGMA user_version returned no row (", path_, ")"));
    return static_cast<int>(s.Int(0));
  }

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  explicit Connection(std::string path) : path_(std::move(path)) {}

  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

namespace {

// Ends a transaction: COMMIT when `s` is OK, else ROLLBACK. Returns the
// combined status.
absl::Status EndTransaction(SqliteStore::Connection& c, absl::Status s) {
  if (s.ok()) {
    absl::StatusOr<Stmt> commit = c.Prepare("COMMIT");
    s = commit.ok() ? commit->Run() : commit.status();
  }
  if (!s.ok() && sqlite3_get_autocommit(c.db()) == 0) {
    absl::StatusOr<Stmt> rollback = c.Prepare("ROLLBACK");
    if (rollback.ok()) rollback->Run().IgnoreError();
  }
  return s;
}

}  // namespace

// --- lifecycle

SqliteStore::SqliteStore(std::string path, bool in_memory, Options options)
    : path_(std::move(path)), in_memory_(in_memory), options_(std::move(options)) {}

SqliteStore::~SqliteStore() {
  // Readers first: the writer, closed last, checkpoints the WAL into the file.
  free_readers_.clear();
  writer_.reset();
}

int SqliteStore::LatestSchemaVersion() { return static_cast<int>(EmbeddedMigrations().size()); }

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  return Open(path, Options());
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               const Options& options) {
  Options opts = options;
  if (opts.migrations.empty()) opts.migrations = EmbeddedMigrations();
  if (opts.max_readers < 1) opts.max_readers = 1;
  const bool in_memory = IsMemoryPath(path);
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(in_memory ? ":memory:" : path, in_memory, std::move(opts)));
  ASSIGN_OR_RETURN(store->writer_, Connection::Open(store->path_, in_memory,
                                                    store->options_.busy_timeout_ms, /*reader=*/false));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status SqliteStore::Migrate() {
  const std::vector<Migration>& migrations = options_.migrations;
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return absl::InvalidArgumentError(absl::StrCat("migration ", migrations[i].name, " has version ",
                                                      migrations[i].version, ", expected ", i + 1));
    }
  }
  const int latest = static_cast<int>(migrations.size());
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& c = *writer_;
  for (const Migration& m : migrations) {
    {
      ASSIGN_OR_RETURN(Stmt begin, c.Prepare("BEGIN IMMEDIATE"));
      RETURN_IF_ERROR(begin.Run());
    }
    // Read the version under the write lock: another process may be
    // migrating the same file at the same time.
    absl::StatusOr<int> current = c.UserVersion();
    absl::Status s = current.status();
    if (s.ok() && *current > latest) {
      s = absl::FailedPreconditionError(absl::StrCat(
          "database ", path_, " has schema version ", *current, " but this binary knows only up to ",
          latest, "; use a newer topolab-scheduler"));
    }
    if (s.ok() && *current < m.version) {
      s = c.Exec(m.sql);
      if (s.ok()) s = c.Exec(absl::StrCat("PRAGMA user_version = ", m.version));
      if (!s.ok()) s = absl::Status(s.code(), absl::StrCat("migration ", m.name, ": ", s.message()));
    }
    RETURN_IF_ERROR(EndTransaction(c, s));
  }
  if (migrations.empty()) {
    ASSIGN_OR_RETURN(int current, c.UserVersion());
    if (current > 0) {
      return absl::FailedPreconditionError(absl::StrCat("database ", path_, " has schema version ",
                                                        current, " but this binary knows none"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SqliteStore::SchemaVersion() {
  int version = 0;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(version, c.UserVersion());
        return absl::OkStatus();
      },
      /*snapshot=*/false));
  return version;
}

// --- transactions and the reader pool

template <typename Fn>
absl::Status SqliteStore::Write(Fn&& fn) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& c = *writer_;
  {
    ASSIGN_OR_RETURN(Stmt begin, c.Prepare("BEGIN IMMEDIATE"));
    RETURN_IF_ERROR(begin.Run());
  }
  return EndTransaction(c, fn(c));
}

template <typename Fn>
absl::Status SqliteStore::Read(Fn&& fn, bool snapshot) {
  auto run = [&](Connection& c) -> absl::Status {
    if (!snapshot) return fn(c);
    {
      ASSIGN_OR_RETURN(Stmt begin, c.Prepare("BEGIN"));
      RETURN_IF_ERROR(begin.Run());
    }
    return EndTransaction(c, fn(c));
  };
  if (in_memory_) {
    std::lock_guard<std::mutex> lock(write_mu_);
    return run(*writer_);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, AcquireReader());
  absl::Status s = run(*conn);
  ReleaseReader(std::move(conn));
  return s;
}

absl::StatusOr<std::unique_ptr<SqliteStore::Connection>> SqliteStore::AcquireReader() {
  std::unique_lock<std::mutex> lock(pool_mu_);
  while (true) {
    if (!free_readers_.empty()) {
      std::unique_ptr<Connection> c = std::move(free_readers_.back());
      free_readers_.pop_back();
      return c;
    }
    if (open_readers_ < options_.max_readers) {
      ++open_readers_;
      lock.unlock();
      absl::StatusOr<std::unique_ptr<Connection>> c =
          Connection::Open(path_, /*in_memory=*/false, options_.busy_timeout_ms, /*reader=*/true);
      if (!c.ok()) {
        lock.lock();
        --open_readers_;
        pool_cv_.notify_one();
      }
      return c;
    }
    pool_cv_.wait(lock);
  }
}

void SqliteStore::ReleaseReader(std::unique_ptr<Connection> conn) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  free_readers_.push_back(std::move(conn));
  pool_cv_.notify_one();
}

// --- experiments and jobs

absl::Status SqliteStore::CreateExperiments(const std::vector<NewExperiment>& batch) {
  RETURN_IF_ERROR(store_internal::CheckNewExperiments(batch));
  if (batch.empty()) return absl::OkStatus();
  return Write([&](Connection& c) -> absl::Status {
    for (const NewExperiment& e : batch) {
      const ExperimentRecord& x = e.experiment;
      {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat("INSERT INTO experiments (", kExperimentColumns,
                                                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")));
        s.Bind(1, x.id);
        s.Bind(2, x.name);
        s.Bind(3, x.owner);
        s.Bind(4, x.priority);
        s.Bind(5, ExperimentStateName(x.state));
        s.Bind(6, x.config_yaml);
        s.Bind(7, x.config_json);
        s.Bind(8, x.config_hash);
        s.Bind(9, x.created_at_ms);
        s.Bind(10, x.finished_at_ms);
        absl::Status st = s.Run();
        if (absl::IsAlreadyExists(st)) {
          return absl::AlreadyExistsError(absl::StrCat("experiment ", x.id, " already exists"));
        }
        RETURN_IF_ERROR(st);
      }
      int ordinal = 0;
      for (const JobRecord& j : e.jobs) {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(kInsertJob));
        s.Bind(1, j.id);
        s.Bind(2, x.id);
        s.Bind(3, j.stage_id);
        s.Bind(4, ordinal++);
        BindJobFields(s, 5, j);
        absl::Status st = s.Run();
        if (absl::IsAlreadyExists(st)) {
          return absl::AlreadyExistsError(absl::StrCat("job ", j.id, " already exists"));
        }
        RETURN_IF_ERROR(st);
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<ExperimentRecord> SqliteStore::GetExperiment(const std::string& id) {
  ExperimentRecord out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat("SELECT ", kExperimentColumns,
                                                        " FROM experiments WHERE id = ?1")));
        s.Bind(1, id);
        ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) return ExperimentNotFound(id);
        ASSIGN_OR_RETURN(out, ReadExperiment(s));
        return absl::OkStatus();
      },
      /*snapshot=*/false));
  return out;
}

absl::StatusOr<std::vector<ExperimentRecord>> SqliteStore::ListExperiments(const ExperimentFilter& filter) {
  if (filter.limit <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("list limit must be positive, got ", filter.limit));
  }
  // One cached statement per combination of filters (at most 16).
  std::vector<std::string> where;
  // With several filters, a unary '+' keeps SQLite off the less selective
  // index (name beats owner beats state), since there are no statistics to
  // tell it which one to use.
  if (!filter.name.empty()) where.push_back("name = ?1");
  if (!filter.owner.empty()) where.push_back(filter.name.empty() ? "owner = ?2" : "+owner = ?2");
  if (filter.state.has_value()) {
    where.push_back(filter.name.empty() && filter.owner.empty() ? "state = ?3" : "+state = ?3");
  }
  if (!filter.before_id.empty()) where.push_back("(created_at_ms, id) < (?4, ?5)");
  std::string sql = absl::StrCat("SELECT ", kExperimentColumns, " FROM experiments");
  if (!where.empty()) absl::StrAppend(&sql, " WHERE ", absl::StrJoin(where, " AND "));
  absl::StrAppend(&sql, " ORDER BY created_at_ms DESC, id DESC LIMIT ?6");
  std::vector<ExperimentRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
        if (!filter.name.empty()) s.Bind(1, filter.name);
        if (!filter.owner.empty()) s.Bind(2, filter.owner);
        if (filter.state.has_value()) s.Bind(3, ExperimentStateName(*filter.state));
        if (!filter.before_id.empty()) {
          s.Bind(4, filter.before_created_at_ms);
          s.Bind(5, filter.before_id);
        }
        s.Bind(6, filter.limit);
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) break;
          ASSIGN_OR_RETURN(ExperimentRecord x, ReadExperiment(s));
          out.push_back(std::move(x));
        }
        return absl::OkStatus();
      },
      /*snapshot=*/false));
  return out;
}

absl::StatusOr<JobRecord> SqliteStore::GetJob(const std::string& id) {
  JobRecord out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?1")));
        s.Bind(1, id);
        ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) return JobNotFound(id);
        ASSIGN_OR_RETURN(out, ReadJob(s));
        return absl::OkStatus();
      },
      /*snapshot=*/false));
  return out;
}

namespace {

absl::Status ExperimentExists(SqliteStore::Connection& c, const std::string& id) {
  ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT 1 FROM experiments WHERE id = ?1"));
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? absl::OkStatus() : ExperimentNotFound(id);
}

absl::Status JobExists(SqliteStore::Connection& c, const std::string& id) {
  ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT 1 FROM jobs WHERE id = ?1"));
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? absl::OkStatus() : JobNotFound(id);
}

// Runs a SELECT of kJobColumns and appends every row to `out`.
absl::Status CollectJobs(Stmt& s, std::vector<JobRecord>& out) {
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    ASSIGN_OR_RETURN(JobRecord j, ReadJob(s));
    out.push_back(std::move(j));
  }
}

}  // namespace

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListJobs(const std::string& experiment_id) {
  std::vector<JobRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(ExperimentExists(c, experiment_id));
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                        " FROM jobs WHERE experiment_id = ?1 ORDER BY ordinal")));
        s.Bind(1, experiment_id);
        return CollectJobs(s, out);
      },
      /*snapshot=*/true));
  return out;
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListActiveJobs() {
  std::vector<JobRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat(
                                     "SELECT ", kJobColumns,
                                     " FROM jobs WHERE state IN ('blocked', 'queued', 'running') ORDER BY id")));
        return CollectJobs(s, out);
      },
      /*snapshot=*/false));
  return out;
}

absl::Status SqliteStore::Apply(const StateUpdate& update) {
  RETURN_IF_ERROR(store_internal::CheckStateUpdate(update));
  if (update.jobs.empty() && update.experiments.empty() && update.metrics.empty()) {
    return absl::OkStatus();
  }
  return Write([&](Connection& c) -> absl::Status {
    for (const JobRecord& j : update.jobs) {
      {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(kUpdateJob));
        BindJobFields(s, 1, j);
        s.Bind(kJobFieldCount + 1, j.id);
        s.Bind(kJobFieldCount + 2, j.experiment_id);
        s.Bind(kJobFieldCount + 3, j.stage_id);
        RETURN_IF_ERROR(s.Run());
      }
      if (sqlite3_changes(c.db()) == 1) continue;
      // Nothing matched: unknown id, or a record that names another experiment/stage.
      ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT experiment_id, stage_id FROM jobs WHERE id = ?1"));
      s.Bind(1, j.id);
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return JobNotFound(j.id);
      return absl::InvalidArgumentError(absl::StrCat(
          "job ", j.id, ": update names experiment ", j.experiment_id, " stage ", j.stage_id,
          " but the stored job belongs to experiment ", s.Text(0), " stage ", s.Text(1)));
    }
    for (const StateUpdate::ExperimentChange& x : update.experiments) {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare("UPDATE experiments SET state = ?1, finished_at_ms = ?2 WHERE id = ?3"));
      s.Bind(1, ExperimentStateName(x.state));
      s.Bind(2, x.finished_at_ms);
      s.Bind(3, x.id);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(c.db()) != 1) return ExperimentNotFound(x.id);
    }
    for (const MetricPoint& m : update.metrics) {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO metrics (job_id, step, name, value, ts_ms) "
                                         "VALUES (?1, ?2, ?3, ?4, ?5)"));
      s.Bind(1, m.job_id);
      s.Bind(2, m.step);
      s.Bind(3, m.name);
      s.Bind(4, m.value);
      s.Bind(5, m.ts_ms);
      absl::Status st = s.Run();
      if (absl::IsNotFound(st)) return JobNotFound(m.job_id);  // foreign key
      RETURN_IF_ERROR(st);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<JobRecord> SqliteStore::ClaimJob(const std::string& job_id, const std::string& worker_id,
                                                int64_t now_ms, int64_t lease_expires_at_ms) {
  JobRecord out;
  RETURN_IF_ERROR(Write([&](Connection& c) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat(
                                   "UPDATE jobs SET state = 'running', worker_id = ?1, attempt = attempt + 1, "
                                   "fencing_token = fencing_token + 1, started_at_ms = ?2, "
                                   "lease_expires_at_ms = ?3 WHERE id = ?4 AND state = 'queued' RETURNING ",
                                   kJobColumns)));
      s.Bind(1, worker_id);
      s.Bind(2, now_ms);
      s.Bind(3, lease_expires_at_ms);
      s.Bind(4, job_id);
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (row) {
        ASSIGN_OR_RETURN(out, ReadJob(s));
        return s.Run();
      }
    }
    ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT state FROM jobs WHERE id = ?1"));
    s.Bind(1, job_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return JobNotFound(job_id);
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is ", s.Text(0), ", not queued"));
  }));
  return out;
}

// --- workers

absl::Status SqliteStore::UpsertWorker(const WorkerRecord& w) {
  RETURN_IF_ERROR(store_internal::CheckWorker(w));
  return Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Stmt s, c.Prepare(
                                 "INSERT OR REPLACE INTO workers (id, host, devices_json, job_kinds_json, "
                                 "max_concurrent_jobs, registered_at_ms, last_seen_ms, alive) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    s.Bind(1, w.id);
    s.Bind(2, w.host);
    s.Bind(3, EncodeDevices(w.devices));
    s.Bind(4, EncodeStrings(w.job_kinds));
    s.Bind(5, w.max_concurrent_jobs);
    s.Bind(6, w.registered_at_ms);
    s.Bind(7, w.last_seen_ms);
    s.Bind(8, w.alive);
    return s.Run();
  });
}

absl::StatusOr<std::vector<WorkerRecord>> SqliteStore::ListWorkers() {
  std::vector<WorkerRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, host, devices_json, job_kinds_json, max_concurrent_jobs, "
                                           "registered_at_ms, last_seen_ms, alive FROM workers ORDER BY id"));
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) return absl::OkStatus();
          WorkerRecord w;
          w.id = s.Text(0);
          w.host = s.Text(1);
          ASSIGN_OR_RETURN(w.devices, DecodeDevices(s.Text(2), absl::StrCat("worker ", w.id, " devices")));
          ASSIGN_OR_RETURN(w.job_kinds, DecodeStrings(s.Text(3), absl::StrCat("worker ", w.id, " job kinds")));
          w.max_concurrent_jobs = static_cast<int>(s.Int(4));
          w.registered_at_ms = s.Int(5);
          w.last_seen_ms = s.Int(6);
          w.alive = s.Int(7) != 0;
          out.push_back(std::move(w));
        }
      },
      /*snapshot=*/false));
  return out;
}

// --- logs

absl::StatusOr<std::vector<LogLineRecord>> SqliteStore::AppendLogs(const std::string& job_id,
                                                                   const std::vector<std::string>& lines,
                                                                   int64_t ts_ms) {
  std::vector<LogLineRecord> out;
  RETURN_IF_ERROR(Write([&](Connection& c) -> absl::Status {
    std::string experiment_id, stage_id;
    int64_t seq = 0;
    {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare(
                                   "SELECT experiment_id, stage_id, "
                                   "(SELECT COALESCE(MAX(seq), 0) FROM logs WHERE job_id = ?1) "
                                   "FROM jobs WHERE id = ?1"));
      s.Bind(1, job_id);
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return JobNotFound(job_id);
      experiment_id = s.Text(0);
      stage_id = s.Text(1);
      seq = s.Int(2);
    }
    out.reserve(lines.size());
    for (const std::string& text : lines) {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare("INSERT INTO logs (job_id, experiment_id, stage_id, seq, ts_ms, text) "
                                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      s.Bind(1, job_id);
      s.Bind(2, experiment_id);
      s.Bind(3, stage_id);
      s.Bind(4, ++seq);
      s.Bind(5, ts_ms);
      s.Bind(6, text);
      RETURN_IF_ERROR(s.Run());
      LogLineRecord r;
      r.id = sqlite3_last_insert_rowid(c.db());
      r.job_id = job_id;
      r.stage_id = stage_id;
      r.seq = seq;
      r.ts_ms = ts_ms;
      r.text = text;
      out.push_back(std::move(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<LogLineRecord>> SqliteStore::ReadLogs(const std::string& experiment_id,
                                                                 const std::string& stage_id,
                                                                 int64_t after_id, int limit) {
  if (limit <= 0) return absl::InvalidArgumentError(absl::StrCat("log limit must be positive, got ", limit));
  std::vector<LogLineRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(ExperimentExists(c, experiment_id));
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(
                                     stage_id.empty()
                                         ? "SELECT id, job_id, stage_id, seq, ts_ms, text FROM logs "
                                           "WHERE experiment_id = ?1 AND id > ?3 ORDER BY id LIMIT ?4"
                                         : "SELECT id, job_id, stage_id, seq, ts_ms, text FROM logs "
                                           "WHERE experiment_id = ?1 AND stage_id = ?2 AND id > ?3 "
                                           "ORDER BY id LIMIT ?4"));
        s.Bind(1, experiment_id);
        if (!stage_id.empty()) s.Bind(2, stage_id);
        s.Bind(3, after_id);
        s.Bind(4, limit);
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) return absl::OkStatus();
          out.push_back(ReadLogLine(s));
        }
      },
      /*snapshot=*/true));
  return out;
}

// --- artifacts

absl::Status SqliteStore::PutArtifact(const ArtifactRecord& a) {
  RETURN_IF_ERROR(store_internal::CheckArtifact(a));
  return Write([&](Connection& c) -> absl::Status {
    std::string experiment_id, stage_id;
    {
      ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT experiment_id, stage_id FROM jobs WHERE id = ?1"));
      s.Bind(1, a.job_id);
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return JobNotFound(a.job_id);
      experiment_id = s.Text(0);
      stage_id = s.Text(1);
    }
    if ((!a.experiment_id.empty() && a.experiment_id != experiment_id) ||
        (!a.stage_id.empty() && a.stage_id != stage_id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "artifact ", a.name, ": experiment ", a.experiment_id, " stage ", a.stage_id, " do not match job ",
          a.job_id, " (experiment ", experiment_id, " stage ", stage_id, ")"));
    }
    ASSIGN_OR_RETURN(Stmt s, c.Prepare(
                                 "INSERT INTO artifacts (experiment_id, job_id, stage_id, name, size, sha256, "
                                 "created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                                 "ON CONFLICT (job_id, name) DO UPDATE SET size = excluded.size, "
                                 "sha256 = excluded.sha256, created_at_ms = excluded.created_at_ms"));
    s.Bind(1, experiment_id);
    s.Bind(2, a.job_id);
    s.Bind(3, stage_id);
    s.Bind(4, a.name);
    s.Bind(5, a.size);
    s.Bind(6, a.sha256);
    s.Bind(7, a.created_at_ms);
    return s.Run();
  });
}

absl::StatusOr<std::vector<ArtifactRecord>> SqliteStore::ListArtifacts(const std::string& experiment_id,
                                                                       const std::string& stage_id) {
  std::vector<ArtifactRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(ExperimentExists(c, experiment_id));
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat(
                                     "SELECT ", kArtifactColumns, " FROM artifacts WHERE experiment_id = ?1",
                                     stage_id.empty() ? "" : " AND stage_id = ?2", " ORDER BY stage_id, name")));
        s.Bind(1, experiment_id);
        if (!stage_id.empty()) s.Bind(2, stage_id);
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) return absl::OkStatus();
          out.push_back(ReadArtifact(s));
        }
      },
      /*snapshot=*/true));
  return out;
}

absl::StatusOr<std::vector<ArtifactRecord>> SqliteStore::ListJobArtifacts(const std::string& job_id) {
  std::vector<ArtifactRecord> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(JobExists(c, job_id));
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat("SELECT ", kArtifactColumns,
                                                        " FROM artifacts WHERE job_id = ?1 ORDER BY name")));
        s.Bind(1, job_id);
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) return absl::OkStatus();
          out.push_back(ReadArtifact(s));
        }
      },
      /*snapshot=*/true));
  return out;
}

absl::StatusOr<ArtifactRecord> SqliteStore::GetArtifact(const std::string& experiment_id,
                                                        const std::string& stage_id, const std::string& name) {
  ArtifactRecord out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        ASSIGN_OR_RETURN(Stmt s, c.Prepare(absl::StrCat(
                                     "SELECT ", kArtifactColumns,
                                     " FROM artifacts WHERE experiment_id = ?1 AND stage_id = ?2 AND name = ?3")));
        s.Bind(1, experiment_id);
        s.Bind(2, stage_id);
        s.Bind(3, name);
        ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          return absl::NotFoundError(absl::StrCat("artifact ", name, " of experiment ", experiment_id,
                                                  " stage ", stage_id, " not found"));
        }
        out = ReadArtifact(s);
        return absl::OkStatus();
      },
      /*snapshot=*/false));
  return out;
}

absl::StatusOr<std::vector<MetricPoint>> SqliteStore::ListMetrics(const std::string& job_id) {
  std::vector<MetricPoint> out;
  RETURN_IF_ERROR(Read(
      [&](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(JobExists(c, job_id));
        ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT job_id, step, name, value, ts_ms FROM metrics "
                                           "WHERE job_id = ?1 ORDER BY step, id"));
        s.Bind(1, job_id);
        while (true) {
          ASSIGN_OR_RETURN(bool row, s.Step());
          if (!row) return absl::OkStatus();
          MetricPoint m;
          m.job_id = s.Text(0);
          m.step = s.Int(1);
          m.name = s.Text(2);
          m.value = s.Real(3);
          m.ts_ms = s.Int(4);
          out.push_back(std::move(m));
        }
      },
      /*snapshot=*/true));
  return out;
}

}  // namespace topolab::server
