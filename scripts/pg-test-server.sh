#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the seh-data OMOP connector tests
# and prints its connection URL on stdout (last line). Usage:
#   export SEH_TEST_PG_URL=$(scripts/pg-test-server.sh)
#   cargo test -p seh-data --test pg_omop
#   scripts/pg-test-server.sh --stop        # stops the cluster started before
# Installs the Debian package `postgresql` if no server binaries are found.
# The cluster lives in a temporary directory, listens on 127.0.0.1 only, on a
# free port, with trust authentication for the local test user; when run as
# root the server runs as the `postgres` system user (PostgreSQL refuses root).
set -euo pipefail

STATE=${SEH_PG_STATE:-/tmp/seh-pg-test}

find_bin() {
  local b
  for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && { echo "$b"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

run_as() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = "--stop" ]; then
  BIN=$(find_bin)
  [ -f "$STATE/dir" ] && run_as "$BIN/pg_ctl" -D "$(cat "$STATE/dir")" -m fast stop >&2 || true
  rm -rf "$STATE"
  exit 0
fi

if ! BIN=$(find_bin); then
  echo "installing postgresql (apt-get)..." >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  BIN=$(find_bin)
fi

# Reuse a running cluster from an earlier call.
if [ -f "$STATE/url" ] && [ -f "$STATE/dir" ] && run_as "$BIN/pg_ctl" -D "$(cat "$STATE/dir")" status >/dev/null 2>&1; then
  cat "$STATE/url"
  exit 0
fi

mkdir -p "$STATE"
DATA=$(mktemp -d /tmp/seh-pg-data.XXXXXX)
if [ "$(id -u)" = 0 ]; then chown postgres: "$DATA"; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_as "$BIN/initdb" -D "$DATA" -U seh -A trust --no-sync >/dev/null
run_as "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
  -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
echo "$DATA" > "$STATE/dir"
URL="postgresql://seh@127.0.0.1:$PORT/postgres"
echo "$URL" > "$STATE/url"
echo "$URL"
