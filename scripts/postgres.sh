#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the server tests and benchmarks: loopback only, trust auth,
# data in a temp dir owned by the postgres user (when run as root). Installs Debian's postgresql
# when no initdb is found.
#
#   eval "$(scripts/postgres.sh start)"   # prints: export LARIMAR_TEST_PG_DSN=postgresql://...
#   scripts/postgres.sh status
#   scripts/postgres.sh stop              # stops it and deletes its data
#
# wal_recycle=off: a checkpoint deletes old WAL segments instead of renaming them for reuse, the
# setting that lets a forget leave no copy in pg_wal (tests/server/test_store_postgres.py checks).
# LARIMAR_PG_DIR picks the folder (default /tmp/larimar-pg-<uid>); LARIMAR_PG_PORT the port
# (default: a free one). Everything but the export lines goes to stderr.
set -euo pipefail

DIR="${LARIMAR_PG_DIR:-/tmp/larimar-pg-$(id -u)}"
DB="larimar_test"
CMD="${1:-start}"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ]; then echo "$d"; return; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}

ensure_installed() {
    BIN="$(find_bindir)"
    if [ -n "$BIN" ]; then return; fi
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL is not installed; run as root or: sudo apt-get install -y postgresql"
        exit 1
    fi
    log "installing Debian's postgresql (apt-get)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
    BIN="$(find_bindir)"
    [ -n "$BIN" ] || { log "postgresql installed but initdb not found"; exit 1; }
}

# Run a PostgreSQL binary as the cluster's owner: postgres refuses to run as root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    if [ -n "${LARIMAR_PG_PORT:-}" ]; then echo "$LARIMAR_PG_PORT"; return; fi
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_env() {
    local port
    port="$(cat "$DIR/port")"
    echo "export LARIMAR_PG_DIR=$DIR"
    echo "export LARIMAR_TEST_PG_DSN=postgresql://postgres@127.0.0.1:$port/$DB"
}

running() {
    [ -f "$DIR/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

start() {
    ensure_installed
    if running; then
        log "already running in $DIR"
        print_env
        return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR"; fi
    as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    local port
    port="$(free_port)"
    echo "$port" | as_owner tee "$DIR/port" >/dev/null
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$DIR -c wal_recycle=off" \
        start >&2 || { cat "$DIR/server.log" >&2; exit 1; }
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
    log "PostgreSQL $("$BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, data in $DIR"
    print_env
}

stop() {
    BIN="$(find_bindir)"
    if [ -n "$BIN" ] && [ -d "$DIR/data" ]; then
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$DIR"
    log "stopped; removed $DIR"
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status)
        BIN="$(find_bindir)"
        if [ -n "$BIN" ] && running; then print_env; else log "not running"; exit 1; fi
        ;;
    *) log "usage: $0 start|stop|status"; exit 2 ;;
esac
