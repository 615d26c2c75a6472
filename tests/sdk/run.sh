#!/usr/bin/env bash
# Runs the Python-SDK test suite (tests/sdk/test_sdk.py) against a built fdi binary.
#
#   cargo build --bin fdi && tests/sdk/run.sh [pytest args...]
#
# FDI_BIN    the binary to test (default target/debug/fdi)
# PYTHON     interpreter used to create the venv (default python3)
# Needs PostgreSQL (127.0.0.1:5432, postgres, trust, database test) and MariaDB/MySQL
# (127.0.0.1:3306, root, no password, database test) as started by .ci/run, plus the
# psql and mariadb (or mysql) command-line clients.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/sdk-venv
REQ=tests/sdk/requirements.txt
STAMP="$VENV/.requirements.sha256"
PYTHON=${PYTHON:-python3}

want=$( { sha256sum "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  echo "[sdk] creating $VENV"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
  echo "$want" > "$STAMP"
fi

FDI_BIN=${FDI_BIN:-target/debug/fdi}
[[ "$FDI_BIN" = /* ]] || FDI_BIN="$PWD/$FDI_BIN"
if [[ ! -x "$FDI_BIN" ]]; then
  echo "[sdk] $FDI_BIN not found: build it first (cargo build --bin fdi)" >&2
  exit 2
fi
export FDI_BIN

export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -ra -v --tb=short tests/sdk/test_sdk.py "$@"
