# Sourced from the repo root by the suites that drive the fdi binary (tests/sdk/run.sh,
# tests/openapi/run.sh; tests/console/run.sh for fdi_bin only).
# python_venv VENV REQUIREMENTS TAG: a venv at VENV with REQUIREMENTS installed, rebuilt only when
# the requirements or the Python version changed. fdi_bin TAG: FDI_BIN (default target/debug/fdi)
# as an absolute path, or exit 2 when it is not built.
python_venv() {
  local venv=$1 req=$2 tag=$3 python=${PYTHON:-python3} stamp want
  stamp="$venv/.requirements.sha256"
  want=$( { sha256sum "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
  if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "[$tag] creating $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    echo "$want" > "$stamp"
  fi
}

fdi_bin() {
  FDI_BIN=${FDI_BIN:-target/debug/fdi}
  [[ "$FDI_BIN" = /* ]] || FDI_BIN="$PWD/$FDI_BIN"
  if [[ ! -x "$FDI_BIN" ]]; then
    echo "[$1] $FDI_BIN not found: build it first (cargo build --bin fdi)" >&2
    exit 2
  fi
  export FDI_BIN
}
