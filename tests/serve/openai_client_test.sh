#!/usr/bin/env bash
# `difftx serve` with real clients: curl for /health, /v1/models, /tokenize, /metrics, and the
# official `openai` npm package (installed here from npm into the build tree) for completions,
# chat and streaming (tests/serve/openai_client.mjs). Exit 77 (CTest: SKIPPED, never passed) when
# node, npm or curl is missing, or npm cannot install the package (no registry reachable).
# Usage: openai_client_test.sh DIFFTX_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
difftx=$1 root=$2
for tool in node npm curl; do
  command -v "$tool" > /dev/null || { echo "SKIPPED: $tool is not installed"; exit 77; }
done
work=$(mkdir -p "$3" && cd "$3" && pwd)
if [[ ! -f "$work/node_modules/openai/package.json" ]]; then
  if ! (cd "$work" && npm install --no-audit --no-fund --loglevel=error openai@7) > "$work/npm.log" 2>&1; then
    echo "SKIPPED: npm install openai failed:"; tail -5 "$work/npm.log"; exit 77
  fi
fi
echo "openai $(node -p "require('$work/node_modules/openai/package.json').version"), node $(node --version)"
cp "$root/tests/serve/openai_client.mjs" "$work/"

log="$work/serve.log"
"$difftx" --threads 2 serve "$root/examples/models/wp-llama-12m" --port 0 --ctx-size 256 > "$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2> /dev/null || true' EXIT
for _ in $(seq 600); do grep -q "^ready:" "$log" && break; sleep 0.05; done
port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
[[ -n "$port" ]] || { echo "FAIL: no port in the server's log:"; cat "$log"; exit 1; }
base="http://127.0.0.1:$port"

expect() {  # expect WHAT EXPECTED_SUBSTRING ACTUAL
  if [[ "$3" == *"$2"* ]]; then echo "ok   $1"; else echo "FAIL $1: expected $2 in: $3"; exit 1; fi
}
expect "curl /health" '{"status":"ok"}' "$(curl -sS "$base/health")"
expect "curl /v1/models" '"id":"wp-llama-12m"' "$(curl -sS "$base/v1/models")"
expect "curl /tokenize" '"tokens":[' "$(curl -sS "$base/tokenize" -d '{"content": "The prince said"}')"
expect "curl 400 names the field" '"param":"max_tokens"' \
  "$(curl -sS "$base/v1/completions" -d '{"prompt": "a", "max_tokens": "ten"}')"
expect "curl 400 status" "400" "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/completions" -d '{"prompt": 1}')"

(cd "$work" && node openai_client.mjs "$base/v1")
expect "curl /metrics" "difftx_requests_finished_total 4" "$(curl -sS "$base/metrics")"

kill -TERM $pid
trap - EXIT
wait $pid && echo "ok   SIGTERM: exit 0" || { echo "FAIL: the server exited $?"; cat "$log"; exit 1; }
