#!/usr/bin/env bash
# Build (or find) the venv of one Farm software stack and print its path on the last line.
#
#   stacks/build.sh STACK            build from stacks/STACK.lock if not built yet
#   stacks/build.sh --lock STACK     re-resolve stacks/STACK.txt into STACK.lock, then build
#   stacks/build.sh --path STACK     print the venv path; exit 0 if built, 3 if not (builds nothing)
#
# The venv lives outside the checkout, at ${FARM_STACKS_DIR:-$HOME/.cache/farm/stacks}/
# STACK-HASH, HASH keyed on the lock file and the Python version: a changed lock is a new
# venv, an unchanged one is found again. Every line of the lock is installed with --no-deps
# (the lock is the whole closure, so nothing else is resolved: no torchvision sneaks in).
# Farm itself is installed editable (--no-deps) from this checkout; when an existing venv's
# Farm points at another checkout it is re-pointed here (seconds). A marker is written only
# after the install and the smoke test of every backend of the stack succeeded; without it,
# a leftover directory is removed and built again. Concurrent builds of one stack wait on a
# lock file. Environment: PYTHON (default python3.11), FARM_STACKS_DIR, FARM_PIP_ARGS (extra
# pip arguments, e.g. an index that has the CPU torch wheels where /opt/wheels is absent).
set -euo pipefail

# The whole script is one function, read before it runs: editing this file during a build
# cannot change the running build.
main() {

  usage() { echo "usage: stacks/build.sh [--lock|--path] main|ipex" >&2; exit 2; }
  relock=0 path_only=0
  case "${1:-}" in
    --lock) relock=1; shift ;;
    --path) path_only=1; shift ;;
  esac
  stack=${1:-}; [ -n "$stack" ] || usage
  here=$(cd "$(dirname "$0")" && pwd)
  repo=$(cd "$here/.." && pwd)
  [ -f "$here/$stack.txt" ] || { echo "unknown stack '$stack' (no stacks/$stack.txt)" >&2; usage; }
  py=${PYTHON:-python3.11}
  command -v "$py" >/dev/null || { echo "$py not found (set PYTHON)" >&2; exit 2; }
  root=${FARM_STACKS_DIR:-$HOME/.cache/farm/stacks}
  read -r -a extra <<< "${FARM_PIP_ARGS:-}"
  pip_flags=(--quiet --disable-pip-version-check --no-input)
  log() { echo "[stacks/build.sh $stack] $*" >&2; }
  quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }

  hash_of_lock() {
    local pyver
    pyver=$("$py" -c 'import platform, sys; print(sys.version.split()[0], platform.machine())')
    { cat "$here/$stack.lock"; echo "python $pyver"; } | sha256sum | cut -c1-16
  }
  if [ "$path_only" = 1 ]; then
    [ -f "$here/$stack.lock" ] || { echo "no stacks/$stack.lock" >&2; exit 2; }
    venv="$root/$stack-$(hash_of_lock)"
    echo "$venv"
    [ -f "$venv/.farm-stack-ok" ] || exit 3
    exit 0
  fi

  mkdir -p "$root"
  exec 9>"$root/.$stack.build-lock"
  flock 9  # one build of a stack at a time on this host

  if [ "$relock" = 1 ]; then
    scratch=$(mktemp -d "$root/.lock-$stack-XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    log "resolving stacks/$stack.txt in a scratch venv"
    "$py" -m venv "$scratch/venv"
    spip=("$scratch/venv/bin/python" -m pip install "${pip_flags[@]}" "${extra[@]}")
    "${spip[@]}" -r "$here/$stack.txt" "$repo" 2>&1 | quiet
    nodeps=$(sed -n 's/^# nodeps: *//p' "$here/$stack.txt")
    # shellcheck disable=SC2086
    [ -z "$nodeps" ] || "${spip[@]}" --no-deps $nodeps 2>&1 | quiet
    {
      echo "# stacks/$stack.lock: the resolved stacks/$stack.txt (+ Farm's dependencies),"
      echo "# frozen by \`stacks/build.sh --lock $stack\` with $("$py" --version 2>&1) on $(uname -m)."
      echo "# Installed line by line with --no-deps; the stack's venv is keyed on this file's hash."
      "$scratch/venv/bin/python" -m pip freeze --all --exclude farm --exclude pip 2>/dev/null \
        | grep -v -e '^-e ' -e '^farm @' | LC_ALL=C sort -f
    } > "$here/$stack.lock"
    log "wrote stacks/$stack.lock ($(grep -vc '^#' "$here/$stack.lock") packages)"
  fi

  lock="$here/$stack.lock"
  [ -f "$lock" ] || { echo "no stacks/$stack.lock: run stacks/build.sh --lock $stack" >&2; exit 2; }
  pyver=$("$py" -c 'import platform, sys; print(sys.version.split()[0], platform.machine())')
  hash=$(hash_of_lock)
  venv="$root/$stack-$hash"
  marker="$venv/.farm-stack-ok"

  farm_src() {  # the checkout the venv's editable Farm points at, or nothing
    "$venv/bin/python" -I -c 'import json
from importlib.metadata import distribution
url = json.loads(distribution("farm").read_text("direct_url.json") or "{}").get("url", "")
print(url.removeprefix("file://"))' 2>/dev/null || true
  }

  if [ -f "$marker" ]; then
    if [ "$(farm_src)" != "$repo" ]; then
      log "re-pointing the editable Farm at $repo"
      "$venv/bin/python" -m pip install "${pip_flags[@]}" --no-deps -e "$repo" 2>&1 | quiet
    fi
    echo "$venv"
    exit 0
  fi

  if [ -d "$venv" ]; then
    log "removing an unfinished build at $venv"
    rm -rf "$venv"
  fi
  log "building $venv from stacks/$stack.lock (python $pyver)"
  df -h "$root" | tail -1 | awk '{print "[stacks/build.sh] free disk at " $6 ": " $4}' >&2
  start=$(date +%s)
  "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install "${pip_flags[@]}" "${extra[@]}")
  grep -v '^#' "$lock" | grep -v '^$' > "$venv/.lock-requirements.txt"
  "${pip[@]}" --no-deps -r "$venv/.lock-requirements.txt" 2>&1 | quiet
  "${pip[@]}" --no-deps -e "$repo" 2>&1 | quiet
  log "installed in $(( $(date +%s) - start )) s; smoke test of the stack's backends"
  (cd "$repo" && HF_HUB_OFFLINE=1 "$venv/bin/python" "$here/smoke.py" "$stack") >&2
  {
    echo "stack=$stack"
    echo "hash=$hash"
    echo "python=$pyver"
    echo "lock_sha256=$(sha256sum "$lock" | cut -d' ' -f1)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_seconds=$(( $(date +%s) - start ))"
  } > "$marker.tmp"
  mv "$marker.tmp" "$marker"
  log "done in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)"
  echo "$venv"
}

main "$@"
