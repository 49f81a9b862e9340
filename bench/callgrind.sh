#!/usr/bin/env bash
# Counts hookd's user-space instructions per message of scenario (a), under callgrind.
#
#     bench/callgrind.sh [HOOKD_BINARY] [MESSAGES]
#
# Wall-clock figures on a shared 2-core VM move by 20-40 % between runs (steal, host load);
# instruction counts do not: the same binary gives the same count to within about 0.1 %, so
# a change of a few percent can be seen and kept or dropped. The count leaves out the
# kernel (about a third of hookd's CPU, mostly loopback TCP) and valgrind runs the threads
# one at a time, so batches are smaller than at full speed: it measures the code's cost, not
# throughput. hookd-bench (release) must be built; valgrind must be installed.
# CALLGRIND_KEEP=FILE keeps the profile; CALLGRIND_PORT picks the port (default 8091).
# CALLGRIND_PAD=N pads each payload with N bytes (default 100; 900 makes about 1 KB).
# CALLGRIND_VALIDATE=1 registers the benchmark's event type with a JSON Schema of its
# payload and validatePayloads on, so every message is checked against it.
# CALLGRIND_SIGNATURE='{"scheme": "stripe"}' signs with that scheme (hookd's `signature`).
# CALLGRIND_SECRET=whsk_... gives the endpoint that secret (an ed25519 key signs v1a).
# CALLGRIND_MAIN_KEY=1 runs hookd with a main key, so endpoint secrets are encrypted at rest.
# CALLGRIND_KEYS=1 sends a new idempotency key with every message, as the Svix SDKs do.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=$(realpath "${1:-$root/target/release/hookd}")
messages=${2:-3000}
bench=$root/target/release/hookd-bench
port=${CALLGRIND_PORT:-8091}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

cd "$work"
if [[ -n ${CALLGRIND_MAIN_KEY:-} ]]; then
    export HOOKD_MAIN_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
fi
HOOKD_ADMIN_TOKEN=callgrind HOOKD_ALLOWED_NETWORKS=127.0.0.0/8 HOOKD_LOG_LEVEL=warn \
    HOOKD_LISTEN=127.0.0.1:$port \
    valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$work/out.%p" \
    "$binary" serve >"$work/valgrind.log" 2>&1 &
pid=$!
for _ in $(seq 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/health/" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/valgrind.log" >&2; exit 1; }
    sleep 1
done

if [[ -n ${CALLGRIND_VALIDATE:-} ]]; then
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/event-type" \
        -H 'Authorization: Bearer callgrind' -H 'Content-Type: application/json' \
        -d '{"name": "bench.event", "description": "hookd-bench", "validatePayloads": true,
             "schemas": {"1": {"type": "object", "required": ["seq", "sent", "pad"],
               "properties": {"seq": {"type": "integer", "minimum": 0},
                              "sent": {"type": "integer"},
                              "pad": {"type": "string", "maxLength": 100000}}}}}'
fi

run() {
    "$bench" a --messages "$1" --url "http://127.0.0.1:$port" --token callgrind --pid "$pid" \
        --pad "${CALLGRIND_PAD:-100}" ${CALLGRIND_SIGNATURE:+--signature "$CALLGRIND_SIGNATURE"} \
        ${CALLGRIND_SECRET:+--secret "$CALLGRIND_SECRET"} ${CALLGRIND_KEYS:+--idempotency-keys} \
        --json "$work/bench.json" --markdown "$work/bench.md"
}
# Warm up (applications, prepared statements, connections), then count a clean run only.
run 300 >/dev/null 2>&1
callgrind_control --zero "$pid" >/dev/null 2>&1
run "$messages" 2>/dev/null | grep '^| a'
callgrind_control --dump "$pid" >/dev/null 2>&1

total=$(callgrind_annotate "$work/out.$pid.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$(basename "$binary"): $total instructions, $((total / messages)) per message"
if [[ -n ${CALLGRIND_KEEP:-} ]]; then
    cp "$work/out.$pid.1" "$CALLGRIND_KEEP"
    echo "profile kept in $CALLGRIND_KEEP (callgrind_annotate --inclusive=yes)"
fi
