#!/usr/bin/env bash
# topolab developer entry point.
#
#   deploy/dev.sh demo   install Debian packages, build, start a scheduler and a
#                        worker on 127.0.0.1, run deploy/examples/quickstart.yaml
#                        end to end, pull its artifacts to ./results/<id>/
#   deploy/dev.sh test   install, build, run the whole test suite (ctest)
#   deploy/dev.sh deps   only install the Debian packages
#   deploy/dev.sh build  only configure and build into build/
#
# Environment: BUILD_DIR (default build), JOBS (default nproc),
#              TOPOLAB_DEMO_CONFIG (default deploy/examples/quickstart.yaml).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libboost-dev libboost-system-dev libspdlog-dev libcli11-dev
  libyaml-cpp-dev nlohmann-json3-dev libstb-dev libpng-dev zlib1g-dev libssl-dev
  libgtest-dev libgmock-dev
  dataset-fashion-mnist
)

log() { printf '\033[1m[dev.sh]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#PACKAGES[@]} Debian packages present"
    return
  fi
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

build() {
  log "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  log "building with $JOBS jobs (first build takes several minutes: LibTorch headers are heavy)"
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# Starts the scheduler on a free loopback port; sets SCHED_ADDR and SCHED_PID.
start_scheduler() {
  local data_dir=$1 log_file=$2
  "$BUILD_DIR/server/topolab-scheduler" --listen 127.0.0.1:0 --data-dir "$data_dir" \
    >"$log_file" 2>&1 &
  SCHED_PID=$!
  for _ in $(seq 1 100); do
    SCHED_ADDR=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log_file" | head -1 | awk '{print $3}') || true
    [ -n "${SCHED_ADDR:-}" ] && return 0
    kill -0 "$SCHED_PID" 2>/dev/null || { cat "$log_file" >&2; return 1; }
    sleep 0.1
  done
  log "scheduler did not report its address"; cat "$log_file" >&2; return 1
}

demo() {
  deps
  build
  local config=${TOPOLAB_DEMO_CONFIG:-$ROOT/deploy/examples/quickstart.yaml}
  local tmp
  tmp=$(mktemp -d -t topolab-demo.XXXXXX)
  SCHED_PID="" WORKER_PID=""
  cleanup() {
    [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null
    [ -n "$SCHED_PID" ] && kill "$SCHED_PID" 2>/dev/null && wait "$SCHED_PID" 2>/dev/null
    true
  }
  trap cleanup EXIT

  start_scheduler "$tmp/data" "$tmp/scheduler.log"
  log "scheduler on $SCHED_ADDR (data dir $tmp/data, log $tmp/scheduler.log)"
  "$BUILD_DIR/worker/topolab-worker" --scheduler "$SCHED_ADDR" --work-dir "$tmp/work" \
    --threads "$(nproc)" >"$tmp/worker.log" 2>&1 &
  WORKER_PID=$!
  log "worker started (log $tmp/worker.log)"

  local topolab="$BUILD_DIR/client/topolab"
  export TOPOLAB_SCHEDULER=$SCHED_ADDR
  local id
  id=$("$topolab" submit "$config")
  log "submitted $config as experiment $id"
  local rc=0
  "$topolab" watch "$id" || rc=$?
  "$topolab" show "$id" || true
  mkdir -p "$ROOT/results"
  "$topolab" pull "$id" -o "$ROOT/results/$id"
  log "artifacts of $id are in $ROOT/results/$id:"
  (cd "$ROOT/results/$id" && find . -type f | sort | sed 's|^\./|  |')
  if [ $rc -ne 0 ]; then
    log "experiment $id did not succeed; logs:"
    "$topolab" logs "$id" | tail -50 || true
    return $rc
  fi
  log "demo finished: experiment $id succeeded"
}

run_tests() {
  deps
  build
  # The science test (label `slow`: two real training runs) is left out;
  # run it with `ctest --test-dir build -L slow`.
  log "running the test suite (ctest -LE slow)"
  cd "$BUILD_DIR"
  ctest --output-on-failure -j "$JOBS" --timeout 900 -LE slow
}

case "${1:-}" in
  demo) demo ;;
  test) run_tests ;;
  deps) deps ;;
  build) deps; build ;;
  *) echo "usage: deploy/dev.sh demo|test|deps|build" >&2; exit 2 ;;
esac
