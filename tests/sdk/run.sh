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

# shellcheck source=tests/python_venv.sh
source tests/python_venv.sh
VENV=target/sdk-venv
python_venv "$VENV" tests/sdk/requirements.txt sdk
fdi_bin sdk

export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -ra -v --tb=short tests/sdk/test_sdk.py "$@"
