#!/usr/bin/env bash
# The reference server's load test, start to finish (README.md beside this file): builds the release server and
# the load test, then twice, once with the query cache and once with QUERY_CACHE_DISABLED=true, creates a fresh
# PostgreSQL database, starts the server on it and Redis with the load-test rate-limit policy, runs the load test,
# stops the server and drops the database. Prints both tables at the end.
#
#   benches/loadtest/run.sh                      # 60 s per run, 100 users, results in $OUT_DIR
#   DURATION=10s benches/loadtest/run.sh --users 20   # arguments after the script go to the load test
#
# Settings (environment): PG_URL (postgres://postgres@127.0.0.1:5432), REDIS_URL (redis://127.0.0.1:6379),
# PORT (18080), DURATION (60s), OUT_DIR (${CARGO_TARGET_DIR:-target}/loadtest). Any server setting already in
# the environment (DB_MAX_CONNECTIONS, LOG_LEVEL, ...) reaches the server unchanged.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=${PORT:-18080}
DURATION=${DURATION:-60s}
target=${CARGO_TARGET_DIR:-$root/target}
OUT_DIR=${OUT_DIR:-$target/loadtest}
mkdir -p "$OUT_DIR"

# Two builds, so the server is built with its own features only, as it would be deployed.
cargo build --release -p reference-server
cargo build --release -p benches --bin loadtest
server=$target/release/reference-server
loadtest=$target/release/loadtest

server_pid=
database=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" && wait "$server_pid" || true
    fi
    server_pid=
    if [[ -n $database ]]; then
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    fi
    database=
}
trap cleanup EXIT INT TERM

status=0
for label in cache no-cache; do
    database=loadtest_$$_${label//-/_}
    prefix=loadtest-$$-$label:
    psql -q "$PG_URL/postgres" -c "CREATE DATABASE $database"
    cache_disabled=false
    [[ $label == no-cache ]] && cache_disabled=true
    log=$OUT_DIR/server-$label.log
    env DATABASE_URL="$PG_URL/$database" REDIS_URL="$REDIS_URL" REDIS_KEY_PREFIX="$prefix" \
        BIND_ADDR="127.0.0.1:$PORT" RATE_LIMIT_POLICY="$root/benches/loadtest/policy.toml" \
        QUERY_CACHE_DISABLED=$cache_disabled \
        JWT_SECRET="$(openssl rand -hex 32)" AUDIT_CHAIN_KEY="$(openssl rand -hex 32)" \
        TOTP_ENCRYPTION_KEY="$(openssl rand -hex 32)" \
        "$server" >"$log" 2>&1 &
    server_pid=$!
    echo "[$label] server $server_pid on 127.0.0.1:$PORT, database $database, log $log"

    # The load test waits for /health/ready itself; exit 1 means errors in the window, 2 that it could not run.
    set +e
    "$loadtest" --base-url "http://127.0.0.1:$PORT" --duration "$DURATION" --label "$label" \
        --out "$OUT_DIR/$label.json" "$@" | tee "$OUT_DIR/$label.txt"
    code=${PIPESTATUS[0]}
    set -e
    [[ $code -ne 0 ]] && status=$code

    cleanup
    # The limiter's and the cache's keys of this run (they expire anyway).
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" 2>/dev/null \
        | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
done

echo
for label in cache no-cache; do
    # The table: from the blank line before it to the targets line.
    sed -n '/^$/,/^targets:/p' "$OUT_DIR/$label.txt"
    echo
done
echo "results: $OUT_DIR/cache.json, $OUT_DIR/no-cache.json; server logs: $OUT_DIR/server-*.log"
exit "$status"
