#!/usr/bin/env bash
# Runs the whole test suite in .venv: the core, the server (with a throwaway PostgreSQL on
# loopback, installed from Debian's packages if missing) and the integrations. Exits non-zero
# when any test fails or none ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ -z "${LARIMAR_TEST_PG_DSN:-}" ] && [ "${LARIMAR_SKIP_POSTGRES:-0}" != 1 ]; then
  eval "$(bash scripts/postgres.sh start)"
  trap 'bash scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
fi

.venv/bin/python -m pytest -q -p no:cacheprovider tests integrations "$@"
