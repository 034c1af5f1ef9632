#!/bin/bash
# Initialises $PGDATA on first start (like the official postgres image:
# POSTGRES_USER, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_DB),
# then runs the server in the foreground as PID 1's child-free exec.
# Clients on the network authenticate with scram-sha-256; the socket is trust.
set -euo pipefail
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then
  POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
fi
if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
  echo "pg-entrypoint: POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) must be set" >&2
  exit 1
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/var/run/postgresql'"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [[ $db != postgres ]]; then
    postgres --single -D "$PGDATA" postgres <<<"CREATE DATABASE \"$db\" OWNER \"$user\";" >/dev/null
  fi
  echo "pg-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
if [[ ${1:-} == postgres ]]; then
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
