#!/usr/bin/env bash
# Runs once, when the PostgreSQL data directory is first created (docker-entrypoint-initdb.d):
# one role and one database per stateful service, each owner of its own database only.
# The passwords come from the postgres-credentials Secret; the services' DATABASE_URLs carry the
# same values (both written by k8s/scripts/gen-secrets.sh).
set -euo pipefail
: "${RECOMMENDATIONS_DB_PASSWORD:?}" "${USERS_DB_PASSWORD:?}"
for service in recommendations users; do
  password_var="${service^^}_DB_PASSWORD"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set=service="$service" --set=password="${!password_var}" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
done
