#!/usr/bin/env bash
# Runs the Svix-SDK compatibility tests against a real `hookd serve` process.
#
#   bash tests/sdk/run.sh            # builds hookd, starts it on a free port, runs pytest
#
# Installs the pinned SDK into a virtualenv (.venv-sdk, or $HOOKD_SDK_VENV) on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${HOOKD_SDK_VENV:-.venv-sdk}"
if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF -f tests/sdk/requirements.txt; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi

cargo build --quiet --bin hookd
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/hookd"

data_dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="hk_sdk_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log="$data_dir/hookd.log"

HOOKD_ADMIN_TOKEN="$token" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "hookd exited before becoming healthy" >&2; exit 1; fi
    sleep 0.1
done

status=0
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" "$venv/bin/pytest" tests/sdk -q "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 100 "$log"
fi
exit "$status"
