#!/bin/sh
# Run once by the postgres image's entry point, when the data directory is first initialised:
# one role and one database per service, each owned by its role and closed to everyone else.
set -eu
for service in order inventory payment; do
  password_variable="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  eval "password=\${$password_variable}"
  psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set service="$service" --set password="$password" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
done
