#!/usr/bin/env bash
# Writes the Secrets' values for kustomize's secretGenerator into k8s/base/secrets/*.env: random,
# generated on the machine that deploys, ignored by git. Existing files are kept (so a redeploy does
# not change the database passwords PostgreSQL was initialised with); pass --force to renew them.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../base/secrets" && pwd)"
force="${1:-}"
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if [ "$force" != "--force" ] && [ -s "$dir/tokens.env" ] && [ -s "$dir/postgres.env" ] \
  && [ -s "$dir/recommendations-database.env" ] && [ -s "$dir/users-database.env" ]; then
  echo "k8s secrets: kept the existing $dir/*.env"; exit 0
fi
umask 077
recommendations_pw="$(rand)"; users_pw="$(rand)"
printf 'TOKEN_SECRET=%s\nPAGE_TOKEN_SECRET=%s\n' "$(rand)" "$(rand)" > "$dir/tokens.env"
printf 'POSTGRES_PASSWORD=%s\nRECOMMENDATIONS_DB_PASSWORD=%s\nUSERS_DB_PASSWORD=%s\n' \
  "$(rand)" "$recommendations_pw" "$users_pw" > "$dir/postgres.env"
printf 'DATABASE_URL=postgres://recommendations:%s@postgres:5432/recommendations\n' \
  "$recommendations_pw" > "$dir/recommendations-database.env"
printf 'DATABASE_URL=postgres://users:%s@postgres:5432/users\n' "$users_pw" > "$dir/users-database.env"
echo "k8s secrets: wrote new random values to $dir/*.env"
