#!/bin/sh
# Run once by the postgres image's entry point, when the data directory is first initialised:
# one role and one database per service, each owned by its role and closed to everyone else.
# The services are the keys of the Secret postgres-credentials, mounted as files in
# $SHOPMESH_DATABASE_PASSWORDS: each `<service>-password` (scripts/gen-db-secret writes one per
# declared service) names a service and holds its password; `postgres-password` is the
# superuser's. So a new service needs no edit here.
set -eu
created=0
for file in "$SHOPMESH_DATABASE_PASSWORDS"/*-password; do
  [ -f "$file" ] || continue
  service="$(basename "$file" -password)"
  [ "$service" != postgres ] || continue
  password="$(cat "$file")"
  psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set service="$service" --set password="$password" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
  created=$((created + 1))
done
if [ "$created" -eq 0 ]; then
  echo "no <service>-password file in $SHOPMESH_DATABASE_PASSWORDS: is postgres-credentials mounted?" >&2
  exit 1
fi
