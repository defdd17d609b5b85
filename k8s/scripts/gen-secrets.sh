#!/usr/bin/env bash
# Writes the Secrets' values for kustomize's secretGenerator (and the token public keys for its
# configMapGenerator) into k8s/base/secrets/*.env: random, generated on the machine that deploys,
# owner-only (0600), ignored by git. Existing files are kept (so a redeploy does not change the
# database passwords PostgreSQL was initialised with, nor sign everyone out); a missing one is
# written; pass --force to renew them all.
#
#   tokens.env                    PAGE_TOKEN_SECRET            Secret bookstore-tokens (marketplace, recommendations)
#   users-token-key.env           TOKEN_SIGNING_KEY            Secret users-token-key (users alone)
#   token-public-keys.env         TOKEN_PUBLIC_KEYS            ConfigMap bookstore-token-keys (users, recommendations)
#   gateway-csrf.env              CSRF_SECRET                  Secret gateway-csrf (gateway)
#   postgres.env, *-database.env  passwords, DATABASE_URL      postgres-credentials, users-database, recommendations-database
#
# The token key pair is Ed25519: made with openssl (1.1.1 or later), or with `users keygen` when
# openssl cannot (USERS_BIN, default target/release/users). Rotating it: docs/security.md.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../base/secrets" && pwd)"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
force="${1:-}"
umask 077
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
have() { [ "$force" != "--force" ] && [ -s "$dir/$1" ]; }

# Prints TOKEN_SIGNING_KEY=KID=BASE64(PKCS#8) and TOKEN_PUBLIC_KEYS=KID=BASE64(32-byte key); the
# key id is the first 16 hex digits of the public key's SHA-256, as `users keygen` makes it.
token_keys() {
  local users_bin="${USERS_BIN:-$repo/target/release/users}" tmp
  tmp="$(mktemp -d)"
  if command -v openssl >/dev/null && openssl genpkey -algorithm ed25519 -outform DER \
      -out "$tmp/key.der" 2>/dev/null; then
    openssl pkey -inform DER -in "$tmp/key.der" -pubout -outform DER | tail -c 32 > "$tmp/pub.raw"
    local kid
    kid="$(openssl dgst -sha256 -r < "$tmp/pub.raw" | cut -c1-16)"
    printf 'TOKEN_SIGNING_KEY=%s=%s\nTOKEN_PUBLIC_KEYS=%s=%s\n' \
      "$kid" "$(openssl base64 -A < "$tmp/key.der")" "$kid" "$(openssl base64 -A < "$tmp/pub.raw")"
  elif [ -x "$users_bin" ]; then
    "$users_bin" keygen
  else
    rm -rf "$tmp"
    echo "k8s secrets: need openssl with Ed25519 or a built users binary ($users_bin) to make the token key" >&2
    return 1
  fi
  rm -rf "$tmp"
}

wrote=()
if ! have tokens.env || grep -q '^TOKEN_SECRET=' "$dir/tokens.env"; then
  # Keeps an existing PAGE_TOKEN_SECRET; drops the shared TOKEN_SECRET of the HMAC era.
  page="$(sed -n 's/^PAGE_TOKEN_SECRET=//p' "$dir/tokens.env" 2>/dev/null || true)"
  if [ "$force" = "--force" ] || [ -z "$page" ]; then page="$(rand)"; fi
  printf 'PAGE_TOKEN_SECRET=%s\n' "$page" > "$dir/tokens.env"
  wrote+=(tokens.env)
fi
if ! have users-token-key.env || ! have token-public-keys.env; then
  keys="$(token_keys)"
  grep '^TOKEN_SIGNING_KEY=' <<<"$keys" > "$dir/users-token-key.env"
  grep '^TOKEN_PUBLIC_KEYS=' <<<"$keys" > "$dir/token-public-keys.env"
  unset keys
  wrote+=(users-token-key.env token-public-keys.env)
fi
if ! have gateway-csrf.env; then
  printf 'CSRF_SECRET=%s\n' "$(rand)" > "$dir/gateway-csrf.env"
  wrote+=(gateway-csrf.env)
fi
if ! have postgres.env || ! have recommendations-database.env || ! have users-database.env; then
  recommendations_pw="$(rand)"; users_pw="$(rand)"
  printf 'POSTGRES_PASSWORD=%s\nRECOMMENDATIONS_DB_PASSWORD=%s\nUSERS_DB_PASSWORD=%s\n' \
    "$(rand)" "$recommendations_pw" "$users_pw" > "$dir/postgres.env"
  printf 'DATABASE_URL=postgres://recommendations:%s@postgres:5432/recommendations\n' \
    "$recommendations_pw" > "$dir/recommendations-database.env"
  printf 'DATABASE_URL=postgres://users:%s@postgres:5432/users\n' "$users_pw" > "$dir/users-database.env"
  wrote+=(postgres.env recommendations-database.env users-database.env)
fi
# Files written before this script made them owner-only.
chmod 600 "$dir"/*.env
if [ ${#wrote[@]} -eq 0 ]; then
  echo "k8s secrets: kept the existing $dir/*.env"
else
  echo "k8s secrets: wrote new random values to ${wrote[*]} in $dir (others kept)"
fi
