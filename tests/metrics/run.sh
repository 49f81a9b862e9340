#!/usr/bin/env bash
# hookd's /metrics checked with real Prometheus tooling: a `hookd serve` with metrics on a
# listener of their own behind a token, a real Prometheus server (Debian's `prometheus`
# package) scraping it every second, and check.py, which sends traffic, parses /metrics with
# prometheus_client's parser and asks Prometheus's HTTP API for
# `rate(hookd_messages_accepted_total[1m]) > 0`.
#
#   bash tests/metrics/run.sh              # on SQLite
#   bash tests/metrics/run.sh postgres     # on a fresh PostgreSQL database
#
# Everything it starts listens on 127.0.0.1 on free ports, and is stopped at exit.
# Installs prometheus_client into a virtualenv (.venv-metrics, or $HOOKD_METRICS_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."

backend="${1:-sqlite}"
here=tests/metrics
venv="${HOOKD_METRICS_VENV:-.venv-metrics}"

if ! command -v prometheus >/dev/null; then
    echo "prometheus not found: apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
fi

source tests/support/hookd.sh
ensure_venv "$venv" "$here/requirements.txt"
bin="$(build_hookd)"

work="$(mktemp -d)"
port="$(free_port)"
metrics_port="$(free_port)"
prometheus_port="$(free_port)"
token="hk_metrics_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
metrics_token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
database_url=""
pg_admin="${HOOKD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_name="hookd_metrics_$$"
case "$backend" in
    sqlite) ;;
    postgres)
        psql "$pg_admin" -q -c "CREATE DATABASE $pg_name" >/dev/null
        database_url="${pg_admin%/*}/$pg_name"
        ;;
    *) echo "usage: $0 [sqlite|postgres]" >&2; exit 2 ;;
esac

hookd_pid=""
prometheus_pid=""
cleanup() {
    for pid in $prometheus_pid $hookd_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$database_url" ]; then
        psql "$pg_admin" -q -c "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

env -u HOOKD_METRICS_VENV -u HOOKD_TEST_DATABASE_URL \
    HOOKD_ADMIN_TOKEN="$token" \
    HOOKD_ALLOWED_NETWORKS=127.0.0.0/8 \
    HOOKD_METRICS_LISTEN="127.0.0.1:$metrics_port" \
    HOOKD_METRICS_TOKEN="$metrics_token" \
    ${database_url:+HOOKD_DATABASE_URL="$database_url"} \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/hookd.log" 2>&1 &
hookd_pid=$!
wait_healthy "$port" "$hookd_pid" "$work/hookd.log"

# The README's example scrape config and alert rules must be valid for Prometheus.
if command -v promtool >/dev/null; then
    python3 - "$work" <<'PY'
import re, sys
text = open("README.md").read()
section = text.split("## Operating hookd", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
# The section has other YAML (the declarative file's example): pick these two by content.
scrape = next(b for b in blocks if "scrape_configs:" in b)
rules = next(b for b in blocks if b.lstrip().startswith("groups:"))
open(sys.argv[1] + "/readme-scrape.yml", "w").write(scrape)
open(sys.argv[1] + "/readme-rules.yml", "w").write(rules)
PY
    touch "$work/hookd-metrics-token"
    sed -i "s|credentials_file: [^ ]*|credentials_file: $work/hookd-metrics-token|" "$work/readme-scrape.yml"
    promtool check config "$work/readme-scrape.yml"
    promtool check rules "$work/readme-rules.yml"
fi

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hookd
    authorization:
      credentials: "$metrics_token"
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn \
    >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null 2>&1 && break
    if ! kill -0 "$prometheus_pid" 2>/dev/null; then
        cat "$work/prometheus.log"; echo "prometheus exited at start" >&2; exit 1
    fi
    sleep 0.2
done

echo "== /metrics with prometheus_client and a Prometheus server ($backend)"
status=0
HOOKD_URL="http://127.0.0.1:$port" HOOKD_TOKEN="$token" \
    METRICS_URL="http://127.0.0.1:$metrics_port" METRICS_TOKEN="$metrics_token" \
    PROMETHEUS_URL="http://127.0.0.1:$prometheus_port" \
    "$venv/bin/python" "$here/check.py" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- hookd log ----"; tail -n 50 "$work/hookd.log"
    echo "---- prometheus log ----"; tail -n 50 "$work/prometheus.log"
fi
exit "$status"
