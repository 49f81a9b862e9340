# Shell functions shared by the scripts that test a real `hookd serve` process
# (tests/sdk/run.sh, tests/conformance/run.sh). Source it from the repository root.

# ensure_venv VENV REQUIREMENTS: (re)creates the virtualenv when it is missing or any pinned
# requirement is not installed as pinned.
ensure_venv() {
    local venv="$1" requirements="$2" installed
    if [ -x "$venv/bin/pip" ] &&
        installed="$("$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null)" &&
        ! grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$requirements" |
            grep -qvxiF -f <(printf '%s\n' "$installed"); then
        return 0
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
}

# build_hookd: builds the debug binary and prints its path.
build_hookd() {
    cargo build --quiet --bin hookd
    echo "$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/hookd"
}

# free_port: prints a TCP port free on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_healthy PORT PID LOG: waits up to 10 s for /api/v1/health; on failure prints the log
# and returns 1.
wait_healthy() {
    local port="$1" pid="$2" log="$3"
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log"; echo "hookd exited before becoming healthy" >&2; return 1
        fi
        sleep 0.1
    done
    cat "$log"; echo "hookd not healthy after 10 s" >&2; return 1
}
