#!/usr/bin/env bash
# Runs the Svix-SDK compatibility tests against a real `hookd serve` process.
#
#   bash tests/sdk/run.sh            # builds hookd, starts it on a free port, runs pytest
#   bash tests/sdk/run.sh -k delivery   # extra arguments go to pytest
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

# hookd refuses HOOKD_* variables that are not options, so the ones meant for this script
# and for pytest are kept away from it. Deliveries go to receivers on 127.0.0.1 and retry
# after about a second, so the delivery tests finish quickly.
env -u HOOKD_SDK_VENV -u HOOKD_URL -u HOOKD_TOKEN -u HOOKD_BIN \
    HOOKD_ADMIN_TOKEN="$token" \
    HOOKD_ALLOWED_NETWORKS=127.0.0.0/8 \
    HOOKD_RETRY_SCHEDULE=1,1,1 \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

wait_healthy "$port" "$pid" "$log"

status=0
# HOOKD_BIN lets tests start hookd processes of their own (e.g. to kill and restart them).
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" HOOKD_BIN="$bin" \
    "$venv/bin/pytest" tests/sdk -q "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 100 "$log"
fi
exit "$status"
