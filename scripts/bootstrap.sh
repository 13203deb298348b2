#!/usr/bin/env bash
# Create or update .venv from the pinned lock. Idempotent: when the lock, pyproject.toml and the
# system packages are unchanged since the last successful run, it installs nothing.
# Usage: scripts/bootstrap.sh [apt-package ...]   (apt packages are installed only when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.vssl-installed"

pick_python() {
  for cand in "${PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "bootstrap: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

missing_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing_apt+=("$pkg")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing system packages: ${missing_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install these system packages (needs root): ${missing_apt[*]}" >&2
    exit 1
  fi
fi

want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
warm_up() {
  # Compile the Numba metric kernels once per install (and kernel source), with a message and the
  # time it takes, instead of inside the first metric call; instant when they are compiled.
  "$VENV/bin/python" -c 'import time; t = time.perf_counter(); from vssl_helpers.metrics import ensure_kernels; ensure_kernels(); print(f"vssl: metric kernels ready ({time.perf_counter() - t:.1f} s)")'
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "bootstrap: .venv is up to date (nothing to install)"
  warm_up
  exit 0
fi

PY=$(pick_python)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "bootstrap: installing the pinned requirements into $VENV (first run: a few minutes)"
"$VENV/bin/python" -m pip install --quiet -r requirements.txt 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=compat -e . 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name vssl-companion --display-name "vssl-companion (.venv)" >/dev/null
echo "$want" > "$STAMP"
warm_up
echo "bootstrap: done"
