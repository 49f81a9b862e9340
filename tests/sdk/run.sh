#!/usr/bin/env bash
# Runs the Svix-SDK compatibility tests against a real `hookd serve` process.
#
#   bash tests/sdk/run.sh            # builds hookd, starts it on a free port, runs pytest
#   bash tests/sdk/run.sh -k delivery   # extra arguments go to pytest
#   HOOKD_SDK_BACKEND=postgres bash tests/sdk/run.sh   # hookd on PostgreSQL (a fresh database,
#       made with $HOOKD_TEST_DATABASE_URL's server, postgres@127.0.0.1:5432 by default)
#
# Installs the pinned SDK into a virtualenv (.venv-sdk, or $HOOKD_SDK_VENV) on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."

source tests/support/hookd.sh

venv="${HOOKD_SDK_VENV:-.venv-sdk}"
ensure_venv "$venv" tests/sdk/requirements.txt
bin="$(build_hookd)"

data_dir="$(mktemp -d)"
port="$(free_port)"
token="hk_sdk_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log="$data_dir/hookd.log"

# On PostgreSQL: one database for the shared server, one for the tests that start hookd
# processes of their own (test_crash_recovery.py), both dropped at the end.
backend="${HOOKD_SDK_BACKEND:-sqlite}"
pg_admin="${HOOKD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database_url="" crash_database_url=""
case "$backend" in
    sqlite) ;;
    postgres)
        for name in "hookd_sdk_$$" "hookd_sdk_crash_$$"; do
            psql "$pg_admin" -q -c "CREATE DATABASE $name" >/dev/null
        done
        database_url="${pg_admin%/*}/hookd_sdk_$$"
        crash_database_url="${pg_admin%/*}/hookd_sdk_crash_$$"
        ;;
    *) echo "HOOKD_SDK_BACKEND must be sqlite or postgres, not $backend" >&2; exit 2 ;;
esac

# hookd refuses HOOKD_* variables that are not options, so the ones meant for this script
# and for pytest are kept away from it. Deliveries go to receivers on 127.0.0.1 and retry
# after about a second, so the delivery tests finish quickly.
env -u HOOKD_SDK_VENV -u HOOKD_URL -u HOOKD_TOKEN -u HOOKD_BIN -u HOOKD_SDK_BACKEND \
    -u HOOKD_TEST_DATABASE_URL -u HOOKD_SDK_CRASH_DATABASE_URL \
    HOOKD_ADMIN_TOKEN="$token" \
    ${database_url:+HOOKD_DATABASE_URL="$database_url"} \
    HOOKD_ALLOWED_NETWORKS=127.0.0.0/8 \
    HOOKD_RETRY_SCHEDULE=1,1,1 \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data_dir"
    if [ -n "$database_url" ]; then
        for url in "$database_url" "$crash_database_url"; do
            psql "$pg_admin" -q -c "DROP DATABASE IF EXISTS ${url##*/} WITH (FORCE)" >/dev/null || true
        done
    fi
}
trap cleanup EXIT

wait_healthy "$port" "$pid" "$log"

status=0
# HOOKD_BIN lets tests start hookd processes of their own (e.g. to kill and restart them).
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" HOOKD_BIN="$bin" \
    HOOKD_SDK_CRASH_DATABASE_URL="$crash_database_url" \
    "$venv/bin/pytest" tests/sdk -q "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 100 "$log"
fi
exit "$status"
