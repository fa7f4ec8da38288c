-- 0001_init: the scheduler's first schema.
--
-- Applied by SqliteStore inside one transaction, after which PRAGMA
-- user_version = 1. Never edit this file once landed: add 0002_*.sql.
--
-- States are stored as their lowercase names (JobStateName /
-- ExperimentStateName in server/store/store.h). Times are Unix milliseconds.
-- Lists (needs, devices, job kinds) and the newest-metrics map are JSON text.
-- SQLite turns a NaN REAL into NULL, so REAL columns that may carry NaN are
-- nullable and NULL reads back as NaN.

CREATE TABLE experiments (
  id             TEXT    NOT NULL PRIMARY KEY,
  name           TEXT    NOT NULL,
  owner          TEXT    NOT NULL,
  priority       INTEGER NOT NULL,
  state          TEXT    NOT NULL,
  config_yaml    TEXT    NOT NULL,
  config_json    TEXT    NOT NULL,
  config_hash    TEXT    NOT NULL,
  created_at_ms  INTEGER NOT NULL,
  finished_at_ms INTEGER NOT NULL DEFAULT 0
);
-- ListExperiments: newest first, optionally filtered by exactly one of
-- name / owner / state (combinations use the most selective and filter).
CREATE INDEX experiments_newest ON experiments (created_at_ms DESC, id DESC);
CREATE INDEX experiments_by_name ON experiments (name, created_at_ms DESC, id DESC);
CREATE INDEX experiments_by_owner ON experiments (owner, created_at_ms DESC, id DESC);
CREATE INDEX experiments_by_state ON experiments (state, created_at_ms DESC, id DESC);

CREATE TABLE jobs (
  id                  TEXT    NOT NULL PRIMARY KEY,
  experiment_id       TEXT    NOT NULL REFERENCES experiments (id),
  ordinal             INTEGER NOT NULL,  -- position in the experiment's stage list
  stage_id            TEXT    NOT NULL,
  kind                TEXT    NOT NULL,
  state               TEXT    NOT NULL,
  priority            INTEGER NOT NULL,
  owner               TEXT    NOT NULL,
  device              TEXT    NOT NULL,
  gpus                INTEGER NOT NULL,
  gpu_memory_gb       REAL,              -- NULL stores NaN
  needs_json          TEXT    NOT NULL,  -- JSON array of stage ids
  spec_json           TEXT    NOT NULL,
  attempt             INTEGER NOT NULL,
  max_attempts        INTEGER NOT NULL,
  fencing_token       INTEGER NOT NULL,
  worker_id           TEXT    NOT NULL,
  lease_expires_at_ms INTEGER NOT NULL,
  progress            REAL,              -- NULL stores NaN
  message             TEXT    NOT NULL,
  metrics_json        TEXT    NOT NULL,  -- JSON object: newest value per metric name
  metrics_step        INTEGER NOT NULL,
  created_at_ms       INTEGER NOT NULL,
  queued_at_ms        INTEGER NOT NULL,
  started_at_ms       INTEGER NOT NULL,
  finished_at_ms      INTEGER NOT NULL,
  UNIQUE (experiment_id, stage_id)
);
-- ListJobs uses the UNIQUE (experiment_id, stage_id) index and sorts the
-- few rows by ordinal. ListActiveJobs: a small partial index that holds only
-- non-terminal jobs, in id order.
CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('blocked', 'queued', 'running');

CREATE TABLE workers (
  id                  TEXT    NOT NULL PRIMARY KEY,
  host                TEXT    NOT NULL,
  devices_json        TEXT    NOT NULL,  -- JSON array of {type, name, memory_bytes}
  job_kinds_json      TEXT    NOT NULL,  -- JSON array of strings
  max_concurrent_jobs INTEGER NOT NULL,
  registered_at_ms    INTEGER NOT NULL,
  last_seen_ms        INTEGER NOT NULL,
  alive               INTEGER NOT NULL
);

-- Log lines. `id` is the global streaming cursor (AUTOINCREMENT: never
-- reused, strictly increasing); `seq` counts per job from 1.
CREATE TABLE logs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id        TEXT    NOT NULL REFERENCES jobs (id),
  experiment_id TEXT    NOT NULL,
  stage_id      TEXT    NOT NULL,
  seq           INTEGER NOT NULL,
  ts_ms         INTEGER NOT NULL,
  text          TEXT    NOT NULL,
  UNIQUE (job_id, seq)
);
CREATE INDEX logs_by_experiment ON logs (experiment_id, id);
CREATE INDEX logs_by_stage ON logs (experiment_id, stage_id, id);

-- One row per (job, name); a re-upload replaces it. The blob lives in the
-- artifact store under its sha256.
CREATE TABLE artifacts (
  job_id        TEXT    NOT NULL REFERENCES jobs (id),
  name          TEXT    NOT NULL,
  experiment_id TEXT    NOT NULL,
  stage_id      TEXT    NOT NULL,
  size          INTEGER NOT NULL,
  sha256        TEXT    NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
CREATE INDEX artifacts_by_stage ON artifacts (experiment_id, stage_id, name);

-- Metric history; the newest value per name is also in jobs.metrics_json.
CREATE TABLE metrics (
  id     INTEGER PRIMARY KEY,
  job_id TEXT    NOT NULL REFERENCES jobs (id),
  step   INTEGER NOT NULL,
  name   TEXT    NOT NULL,
  value  REAL,              -- NULL stores NaN (SQLite has no NaN)
  ts_ms  INTEGER NOT NULL
);
CREATE INDEX metrics_by_job ON metrics (job_id, step, id);
