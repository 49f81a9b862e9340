#!/usr/bin/env bash
# The generated conformance run: schemathesis sends requests generated from an OpenAPI
# document to a real `hookd serve`, first from the reference Svix server's document
# (svix-server-openapi.json, vendored beside this script), then from hookd's own, served at
# /api/v1/openapi.json (which is first checked with openapi-spec-validator).
#
#   bash tests/conformance/run.sh              # on SQLite
#   bash tests/conformance/run.sh postgres     # on a fresh PostgreSQL database
#   CONFORMANCE_EXAMPLES=100 bash tests/conformance/run.sh   # a longer (nightly-size) run
#
# It fails when a request the document allows is refused (a 4xx other than 404 and 409),
# when a response does not conform to the document's schema for its status, or on any 5xx.
# Installs the pinned tools into a virtualenv (.venv-conformance, or $HOOKD_CONFORMANCE_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."

backend="${1:-sqlite}"
examples="${CONFORMANCE_EXAMPLES:-10}"
here=tests/conformance
venv="${HOOKD_CONFORMANCE_VENV:-.venv-conformance}"

source tests/support/hookd.sh
ensure_venv "$venv" "$here/requirements.txt"
bin="$(build_hookd)"

work="$(mktemp -d)"
port="$(free_port)"
token="hk_conformance_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log="$work/hookd.log"
database_url=""
pg_admin="${HOOKD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_name="hookd_conformance_$$"
case "$backend" in
    sqlite) ;;
    postgres)
        psql "$pg_admin" -q -c "CREATE DATABASE $pg_name" >/dev/null
        database_url="${pg_admin%/*}/$pg_name"
        ;;
    *) echo "usage: $0 [sqlite|postgres]" >&2; exit 2 ;;
esac

# Deliveries of the generated messages go to the generated URLs; the SSRF guard refuses
# most of them, and the rest fail and retry in the background, which is all fine here.
env -u HOOKD_CONFORMANCE_VENV -u HOOKD_TEST_DATABASE_URL \
    HOOKD_ADMIN_TOKEN="$token" \
    ${database_url:+HOOKD_DATABASE_URL="$database_url"} \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "$database_url" ]; then
        psql "$pg_admin" -q -c "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

wait_healthy "$port" "$pid" "$log"

curl -fsS "http://127.0.0.1:$port/api/v1/openapi.json" -o "$work/hookd-openapi.json"
echo "== hookd's OpenAPI document: openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$work/hookd-openapi.json"

# Both documents: never a 5xx; a request the document allows is accepted; each response
# conforms to the documented schema and content type for its status.
checks=not_a_server_error,positive_data_acceptance,response_schema_conformance,content_type_conformance
# Logout revokes the token it is sent with, and the run's token is the configuration's
# admin token, which cannot log out (403, by design: see the README's API tokens).
# tests/it/tokens.rs and tests/sdk/test_tokens.py log stored tokens out.
not_served='^/api/v1/auth/logout$'

run() {
    local name="$1" document="$2"
    shift 2
    echo "== schemathesis: $name ($backend, $examples examples per operation and phase)"
    local start=$SECONDS
    HOOKD_TOKEN="$token" SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" \
        "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$document" \
        --url "http://127.0.0.1:$port" --max-examples "$examples" \
        --no-color --checks "$checks" "$@" \
        || { echo "---- hookd log ----"; tail -n 50 "$log"; return 1; }
    echo "== $name: $((SECONDS - start)) s"
}

status=0
run "the reference document" "$here/svix-server-openapi.json" \
    --exclude-path-regex "$not_served" || status=1
# hookd's own document also states every status hookd answers.
checks="$checks,status_code_conformance"
run "hookd's own document" "$work/hookd-openapi.json" \
    --exclude-path-regex "$not_served" || status=1
exit "$status"
