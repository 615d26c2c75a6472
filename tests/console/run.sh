#!/usr/bin/env bash
# Browser tests of the web console (tests/console/console.test.mjs) against a built fdi binary,
# in headless Debian chromium driven by playwright-core, then the console's first-render benchmark
# over 10,000 tasks.
#
#   cargo build --bin fdi && tests/console/run.sh
#
# FDI_BIN           the binary to test (default target/debug/fdi)
# CONSOLE_ROWS      rows of the PostgreSQL source table the long run copies (default 3000000)
# CONSOLE_BENCH_TASKS  tasks created for the benchmark (default 10000; 0 skips it)
# CONSOLE_BENCH_TASKS_VIA_API  how many of them through the API (default 200; the rest in the store)
# Screenshots of every page go to target/console-artifacts/.
# Needs PostgreSQL (127.0.0.1:5432, postgres, trust, database test) as .ci/run starts, psql, and
# sqlite3 (the benchmark clones tasks in the server's SQLite store).
# Installs Debian's chromium (apt-get, as root) when /usr/bin/chromium is missing, and
# playwright-core (pinned in package-lock.json) into tests/console/node_modules.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "[console] $*"; }

if [[ ! -x /usr/bin/chromium ]]; then
  log "installing Debian's chromium"
  t0=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  log "chromium installed in $(( $(date +%s) - t0 )) s"
fi

DIR=tests/console
STAMP="$DIR/node_modules/.package-lock.sha256"
want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  log "npm ci (playwright-core)"
  t0=$(date +%s)
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$STAMP"
  log "npm ci took $(( $(date +%s) - t0 )) s"
fi

# shellcheck source=tests/python_venv.sh
source tests/python_venv.sh
fdi_bin console
export CONSOLE_ARTIFACTS=${CONSOLE_ARTIFACTS:-$PWD/target/console-artifacts}
mkdir -p "$CONSOLE_ARTIFACTS"
rm -f "$CONSOLE_ARTIFACTS"/*.png "$CONSOLE_ARTIFACTS"/fdi.log   # only this run's screenshots
exec node "$DIR/console.test.mjs" "$@"
