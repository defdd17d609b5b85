#!/usr/bin/env bash
# `make api-contract`: the whole suite (the workspace's debug binaries) on free loopback ports,
# then schemathesis 4 against the gateway's own OpenAPI document with every check, first
# anonymously, then with the bearer token of a user signed up through the API. Exits non-zero
# on any failure. Environment: SCHEMATHESIS (the binary), MAX_EXAMPLES (per operation, default
# 30), BIN_DIR (default target/debug), CONTRACT_KEEP=1 keeps the work directory for inspection.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
SCHEMATHESIS=${SCHEMATHESIS:-schemathesis}
MAX_EXAMPLES=${MAX_EXAMPLES:-30}
BIN_DIR=${BIN_DIR:-target/debug}
work=$(mktemp -d /tmp/bookstore-contract.XXXXXX)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -z "${CONTRACT_KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap stop EXIT

read -r p_mk a_mk p_rec a_rec p_us a_us p_gw a_gw < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)
# A token key pair for this run: the private key to users alone, the public key to both.
keys=$("$BIN_DIR/users" keygen)
signing_key=$(sed -n 's/^TOKEN_SIGNING_KEY=//p' <<<"$keys")
export TOKEN_PUBLIC_KEYS=$(sed -n 's/^TOKEN_PUBLIC_KEYS=//p' <<<"$keys")
unset keys
export LOG_FORMAT=json RUST_LOG=${RUST_LOG:-warn} SHUTDOWN_DELAY_MS=0 DRAIN_TIMEOUT_MS=1000
start() {
  local name=$1; shift
  env "$@" "$BIN_DIR/$name" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
start marketplace GRPC_ADDR=127.0.0.1:$p_mk ADMIN_ADDR=127.0.0.1:$a_mk
start recommendations GRPC_ADDR=127.0.0.1:$p_rec ADMIN_ADDR=127.0.0.1:$a_rec \
  "DATABASE_URL=sqlite://$work/recommendations.db?mode=rwc"
start users GRPC_ADDR=127.0.0.1:$p_us ADMIN_ADDR=127.0.0.1:$a_us \
  "DATABASE_URL=sqlite://$work/users.db?mode=rwc" RECOMMENDATIONS_URL=http://127.0.0.1:$p_rec \
  "TOKEN_SIGNING_KEY=$signing_key"
# The sign-in/sign-up budgets are raised: the fuzzer is one client sending hundreds of them,
# many with wrong passwords, and the limits themselves are tested in gateway/tests/api.
# Everything else runs as configured.
start gateway HTTP_ADDR=127.0.0.1:$p_gw ADMIN_ADDR=127.0.0.1:$a_gw \
  MARKETPLACE_URL=http://127.0.0.1:$p_mk RECOMMENDATIONS_URL=http://127.0.0.1:$p_rec \
  USERS_URL=http://127.0.0.1:$p_us AUTH_RATE_PER_MINUTE=100000 AUTH_RATE_BURST=100000 \
  AUTH_ACCOUNT_RATE_PER_MINUTE=100000 AUTH_ACCOUNT_RATE_BURST=100000

for a in $a_mk $a_rec $a_us $a_gw; do
  ok=""
  for _ in $(seq 1 600); do
    if curl -fs "http://127.0.0.1:$a/readyz" >/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "api-contract: the service with admin port $a is not ready; logs in $work" >&2; CONTRACT_KEEP=1; exit 1; }
done
base=http://127.0.0.1:$p_gw
schema=$base/api/v1/openapi.json

# A real user and token, through the API itself.
email="contract-$(date +%s)-$RANDOM@example.org"
password="contract-password-$RANDOM"
curl -fsS -X POST "$base/api/v1/users" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"display_name\":\"Contract\",\"password\":\"$password\"}" >/dev/null
token=$(curl -fsS -X POST "$base/api/v1/sessions" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# Something to list, page through and delete with that token.
for b in 1 2 3; do
  curl -fsS -X PUT "$base/api/v1/me/ratings/$b" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"stars":4}' >/dev/null
done

cd "$work"  # schemathesis keeps its state in ./.schemathesis
export PYTHONPATH="$root/gateway/tests/contract${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=hooks
common=(--checks all --max-examples "$MAX_EXAMPLES" --seed "${SEED:-20261122}" --no-color
  --workers 1 --request-timeout 10 --generation-database none --suppress-health-check all
  # The live feed never ends: a generated request would hold it open until the timeout. Its
  # contract (400/404 problems, the 503 cap) is tested in gateway/tests/api.
  --exclude-path /api/v1/ratings/stream)
status=0
echo "== schemathesis, anonymous =="
"$SCHEMATHESIS" run "$schema" "${common[@]}" \
  --report junit --report-junit-path "$work/anonymous.xml" || status=1
echo "== schemathesis, with the bearer token of $email =="
# Signing out would end the very token the rest of this run uses: that operation is run
# anonymously above and with a token of its own below.
"$SCHEMATHESIS" run "$schema" "${common[@]}" -H "Authorization: Bearer $token" \
  --exclude-path /api/v1/sessions/current \
  --report junit --report-junit-path "$work/token.xml" || status=1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if "/api/v1/sessions/current" in d["paths"] else 1)' <(curl -fsS "$schema"); then
  echo "== schemathesis, sign-out with a token of its own =="
  # An account of its own too: the run with the first token may have deleted that account.
  email2="contract2-$(date +%s)-$RANDOM@example.org"
  curl -fsS -X POST "$base/api/v1/users" -H 'content-type: application/json' \
    -d "{\"email\":\"$email2\",\"display_name\":\"Contract\",\"password\":\"$password\"}" >/dev/null
  token2=$(curl -fsS -X POST "$base/api/v1/sessions" -H 'content-type: application/json' \
    -d "{\"email\":\"$email2\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  "$SCHEMATHESIS" run "$schema" "${common[@]}" -H "Authorization: Bearer $token2" \
    --include-path /api/v1/sessions/current --phases examples,coverage,fuzzing || status=1
fi
if [ $status -ne 0 ]; then CONTRACT_KEEP=1; echo "api-contract: FAILED (logs in $work)" >&2; fi
exit $status
