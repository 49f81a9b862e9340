#!/usr/bin/env bash
# Runs the admin UI's browser tests: a real headless Chromium (Debian's `chromium` package,
# /usr/bin/chromium) driven by Playwright for Python, against a real `hookd serve` process.
#
#   bash tests/ui/run.sh             # builds hookd, starts it on a free port, runs pytest
#   bash tests/ui/run.sh -k portal   # extra arguments go to pytest
#
# Installs the pinned Playwright into a virtualenv (.venv-ui, or $HOOKD_UI_VENV) on first
# use; Playwright's own browser download is never used (`playwright install` is not run).
# Screenshots of every page are written to target/ui-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."

source tests/support/hookd.sh

chromium="${HOOKD_UI_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    echo "$chromium not found: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
fi

venv="${HOOKD_UI_VENV:-.venv-ui}"
ensure_venv "$venv" tests/ui/requirements.txt
bin="$(build_hookd)"

data_dir="$(mktemp -d)"
port="$(free_port)"
token="hk_ui_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log="$data_dir/hookd.log"
shots="$(pwd)/target/ui-screenshots"
rm -rf "$shots"
mkdir -p "$shots"

# hookd refuses HOOKD_* variables that are not options, so the ones meant for this script
# and for pytest are kept away from it. Deliveries go to a receiver on 127.0.0.1 and retry
# after about a second.
env -u HOOKD_UI_VENV -u HOOKD_URL -u HOOKD_TOKEN -u HOOKD_UI_CHROMIUM -u HOOKD_UI_SCREENSHOTS \
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
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" HOOKD_UI_CHROMIUM="$chromium" \
    HOOKD_UI_SCREENSHOTS="$shots" \
    "$venv/bin/pytest" tests/ui -q -p no:cacheprovider "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 100 "$log"
fi
echo "screenshots: $shots"
exit "$status"
