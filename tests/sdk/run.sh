#!/usr/bin/env bash
# Runs the Svix-SDK compatibility tests against a real `hookd serve` process.
#
#   bash tests/sdk/run.sh            # builds hookd, starts it on a free port, runs pytest
#   bash tests/sdk/run.sh -k delivery   # extra arguments go to pytest
#
# Installs the pinned SDK into a virtualenv (.venv-sdk, or $HOOKD_SDK_VENV) on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${HOOKD_SDK_VENV:-.venv-sdk}"
# (Re)install when the venv is missing or any pinned requirement is not installed as pinned.
requirements_missing() {
    local installed
    installed="$("$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null)" || return 0
    grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' tests/sdk/requirements.txt |
        grep -qvxiF -f <(printf '%s\n' "$installed")
}
if [ ! -x "$venv/bin/pytest" ] || requirements_missing; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi

cargo build --quiet --bin hookd
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/hookd"

data_dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
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

healthy=0
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then healthy=1; break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "hookd exited before becoming healthy" >&2; exit 1; fi
    sleep 0.1
done
if [ "$healthy" -ne 1 ]; then cat "$log"; echo "hookd not healthy after 10 s" >&2; exit 1; fi

status=0
# HOOKD_BIN lets tests start hookd processes of their own (e.g. to kill and restart them).
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" HOOKD_BIN="$bin" \
    "$venv/bin/pytest" tests/sdk -q "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 100 "$log"
fi
exit "$status"
