#!/usr/bin/env bash
# Portrait Studio: set up (once) and run.
#   ./launch.sh [--share] [--auth USER:PASS] [--host H] [--port P] [--profile default|tiny] [--offline]
#   ./launch.sh --test [pytest args...]     install test extras too, then run the whole test suite
# Creates .venv in this folder on first use and reinstalls only when the requirement files change.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

mode="app"
if [[ "${1:-}" == "--test" ]]; then
  mode="test"
  shift
fi

requirements_hash() {  # $1 = app|test: the files whose content decides what is installed
  local files=(requirements.txt constraints.txt)
  [[ "$1" == "test" ]] && files+=(requirements-test.txt)
  cat "${files[@]}" | sha256sum | cut -d' ' -f1
}

ensure_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.install-stamp-$mode"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$(requirements_hash "$mode")" ]]; then
    return
  fi
  echo "==> installing Python packages into $VENV (first run takes a few minutes)"
  "${PIP[@]}" install -q -U pip wheel setuptools
  # torch first, pinned, so that nothing later pulls another build. basicsr (an sdist) lists torch in its
  # setup_requires: built without isolation it uses this torch instead of installing a second one into an
  # isolated build environment (plain pip works too, only slower: that is how a Space builds it).
  "${PIP[@]}" install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1 numpy cython
  "${PIP[@]}" install -q -c constraints.txt --no-build-isolation "$(grep -E '^basicsr==' requirements.txt)"
  "${PIP[@]}" install -q -r requirements.txt -c constraints.txt
  requirements_hash app > "$VENV/.install-stamp-app"
  if [[ "$mode" == "test" ]]; then
    "${PIP[@]}" install -q -r requirements-test.txt -c constraints.txt
    requirements_hash test > "$VENV/.install-stamp-test"
  fi
}

ensure_system_test_tools() {
  # Debian packages the tests use: chromium (browser test), espeak-ng (speech for the Talk tests).
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  [[ ${#missing[@]} -eq 0 ]] && return
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed (needs root + apt-get); the tests that need them will be skipped"
  fi
}

ensure_venv
if [[ "$mode" == "test" ]]; then
  ensure_system_test_tools
  exec "$VENV/bin/python" -m pytest "$@"
fi
exec "$VENV/bin/python" app.py "$@"
