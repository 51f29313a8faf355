#!/usr/bin/env bash
# Run a command (the test suite) with a PostgreSQL server the tests can use.
#
#   scripts/with-postgres.sh .venv/bin/pytest [pytest options]
#
# The tests read the server from IMPROV_TEST_PG (default
# postgresql://postgres@127.0.0.1:5432/test: a role allowed to create databases, and a
# database to connect to). When that server answers, the command runs against it. When it
# does not (or FORCE_PRIVATE_PG=1), a private cluster is made for the run: Debian's
# PostgreSQL is installed if missing, initdb creates a cluster in a temporary folder, it
# listens on 127.0.0.1 on a free port (its socket in that folder), IMPROV_TEST_PG points at
# its database "test", and the cluster is stopped and removed when the command ends,
# fails, or this script is interrupted or killed. The command's exit status is returned.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]   (e.g. $0 .venv/bin/pytest -q)" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
url="${IMPROV_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"

# Whether a server answers at $1 (and its database exists): psycopg from the project's
# environment, else psql.
answers() {
  local py="$root/.venv/bin/python"
  [ -x "$py" ] || py=python3
  if "$py" -c 'import psycopg' 2>/dev/null; then
    "$py" - "$1" >/dev/null 2>&1 <<'EOF'
import sys

import psycopg

psycopg.connect(sys.argv[1], connect_timeout=3).close()
EOF
  elif command -v psql >/dev/null; then
    psql "$1" -Atqc 'select 1' >/dev/null 2>&1 </dev/null
  else
    return 1
  fi
}

if [ "${FORCE_PRIVATE_PG:-0}" != "1" ] && answers "$url"; then
  echo "PostgreSQL for the tests: $url"
  export IMPROV_TEST_PG="$url"
  exec "$@"
fi

# -- a private cluster for this run

bindir() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}
if ! bin="$(bindir)"; then
  bash "$root/scripts/system-deps.sh" postgres
  bin="$(bindir)" || {
    echo "error: PostgreSQL's server programs are not in /usr/lib/postgresql/<version>/bin" \
      "after installing Debian's package postgresql" >&2
    exit 1
  }
fi

# initdb and the server refuse to run as root: as root, they run as the user postgres
# (which Debian's package creates; made here when missing).
as=()
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  as=(runuser -u postgres --)
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/improv-pg.XXXXXX")"
[ ${#as[@]} -eq 0 ] || chown postgres "$dir"
data="$dir/data"

cleanup() {
  "${as[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
child=""
on_signal() {  # $1: the signal, $2: the exit status to end with
  trap '' INT TERM HUP
  if [ -n "$child" ]; then
    # SIGINT from a terminal reached the command too (same process group); SIGTERM and
    # SIGHUP may have been sent to this script alone: pass them on. Then let the command
    # end (pytest runs its teardown) before the cluster goes.
    [ "$1" = INT ] || kill -s "$1" "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  trap - EXIT
  cleanup
  exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# A watchdog in a session of its own removes the cluster if this script dies without
# running its traps (SIGKILL, or its whole process group killed).
setsid bash -c '
  while kill -0 "$1" 2>/dev/null; do sleep 1; done
  shift
  "$@" -m immediate stop >/dev/null 2>&1
  rm -rf "$0"
' "$dir" "$$" "${as[@]}" "$bin/pg_ctl" -D "$data" </dev/null >/dev/null 2>&1 &

"${as[@]}" "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-locale --no-sync \
  >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  echo "error: initdb failed in $data" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
started=""
for _ in 1 2 3; do  # a port found free may be taken before the server binds it
  port="$(free_port)"
  if "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c max_connections=200" \
    start >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  tail -n 20 "$dir/server.log" >&2 || true
  echo "error: the private PostgreSQL server did not start (log above)" >&2
  exit 1
fi
"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test

export IMPROV_TEST_PG="postgresql://postgres@127.0.0.1:$port/test"
echo "PostgreSQL for the tests: a private cluster, $IMPROV_TEST_PG (removed afterwards)"
# The command runs in the background so that a signal reaches the traps above at once; it
# keeps this script's standard input, and SIGINT (ignored by default in a background
# command) is given back its default action.
reset=(env --default-signal=INT,QUIT)
"${reset[@]}" true 2>/dev/null || reset=()
"${reset[@]}" "$@" <&0 &
child=$!
status=0
wait "$child" || status=$?
exit "$status"
