#!/usr/bin/env bash
# The whole system on this machine: install, build, database + migrations, then the reference
# segmenter (:5002), one API process (:5001) and one worker process (:5003). Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run build
npm run migration:run
export UPLOAD_DIR="${UPLOAD_DIR:-$PWD/uploads}"
mkdir -p "$UPLOAD_DIR"
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait || true; }
trap cleanup EXIT INT TERM
SEGMENTER_PORT="${SEGMENTER_PORT:-5002}" npm run --silent segmenter:prod & pids+=($!)
APP_ROLE=api PORT="${PORT:-5001}" npm run --silent start:prod & pids+=($!)
APP_ROLE=worker PORT="${WORKER_PORT:-5003}" npm run --silent start:prod & pids+=($!)
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${PORT:-5001}/api/health/ready" >/dev/null 2>&1; then
    echo "API ready on http://localhost:${PORT:-5001}/api (docs at /api/docs)"
    break
  fi
  sleep 1
done
wait -n "${pids[@]}"
