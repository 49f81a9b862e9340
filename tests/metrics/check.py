"""Checks hookd's /metrics with real Prometheus tooling (run by tests/metrics/run.sh).

1. Sends traffic through hookd's API: an application, an endpoint at a receiver served by
   this script, messages every 100 ms, a request that fails validation.
2. Parses /metrics with prometheus_client's text parser (the reference implementation of
   the format): every family has the type its name promises, counters end in _total,
   histograms have ordered cumulative buckets, labels carry no ids or URLs, and the values
   moved with the traffic.
3. Asks the Prometheus server scraping hookd, through its HTTP API, until
   `rate(hookd_messages_accepted_total[1m]) > 0` and a histogram quantile have answers.

Environment: HOOKD_URL, HOOKD_TOKEN, METRICS_URL, METRICS_TOKEN, PROMETHEUS_URL.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

HOOKD = os.environ["HOOKD_URL"]
TOKEN = os.environ["HOOKD_TOKEN"]
METRICS = os.environ["METRICS_URL"]
METRICS_TOKEN = os.environ["METRICS_TOKEN"]
PROMETHEUS = os.environ["PROMETHEUS_URL"]


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def api(method, path, body=None):
    status, text = call(method, HOOKD + path, body, TOKEN)
    return status, (json.loads(text) if text else None)


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def traffic(stop, app_id, sent):
    while not stop.is_set():
        status, _ = api("POST", f"/api/v1/app/{app_id}/msg", {"eventType": "order.paid", "payload": {"n": sent[0]}})
        assert status == 202, status
        sent[0] += 1
        stop.wait(0.1)


def scrape():
    status, text = call("GET", METRICS + "/metrics")
    assert status == 401, f"/metrics without the token answered {status}"
    status, text = call("GET", METRICS + "/metrics", token=METRICS_TOKEN)
    assert status == 200, status
    return text


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample_name, **labels):
    for s in fams[family].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {sample_name}{labels}")


def check_format(fams, ids):
    expected = {
        # prometheus_client names a counter family without its _total suffix.
        "hookd_messages_accepted": "counter",
        "hookd_attempts": "counter",
        "hookd_http_requests": "counter",
        "hookd_attempt_duration_seconds": "histogram",
        "hookd_first_attempt_latency_seconds": "histogram",
        "hookd_http_request_duration_seconds": "histogram",
        "hookd_store_commit_duration_seconds": "histogram",
        "hookd_store_batch_jobs": "histogram",
        "hookd_deliveries_pending": "gauge",
        "hookd_deliveries_due": "gauge",
        "hookd_deliveries_scheduled": "gauge",
        "hookd_deliveries_parked": "gauge",
        "hookd_deliveries_in_flight": "gauge",
        "hookd_oldest_due_delivery_age_seconds": "gauge",
        "hookd_attempts_in_flight": "gauge",
        "hookd_endpoints": "gauge",
        "hookd_store_up": "gauge",
        "hookd_db_connections": "gauge",
        "hookd_db_connections_max": "gauge",
    }
    for name, kind in expected.items():
        assert name in fams, f"missing {name}"
        assert fams[name].type == kind, f"{name} is a {fams[name].type}, not a {kind}"
        assert fams[name].documentation, f"{name} has no HELP"
    for fam in fams.values():
        assert fam.name.startswith("hookd_"), fam.name
        for s in fam.samples:
            for label in s.labels.values():
                assert not any(i in label for i in ids), f"{s.name} carries an id: {s.labels}"
                assert "://" not in label and "127.0.0.1" not in label, s.labels
        if fam.type == "histogram":
            series = {}
            for s in fam.samples:
                if s.name.endswith("_bucket"):
                    key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                    series.setdefault(key, []).append((float(s.labels["le"]), s.value))
            for key, buckets in series.items():
                counts = [c for _, c in sorted(buckets)]
                assert counts == sorted(counts), f"{fam.name}{key}: buckets not cumulative"
                assert sorted(buckets)[-1][0] == float("inf"), f"{fam.name}{key}: no +Inf"


def prometheus_query(query):
    url = PROMETHEUS + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    status, text = call("GET", url)
    assert status == 200, f"{query}: {status} {text}"
    body = json.loads(text)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_prometheus(query, deadline):
    while True:
        result = prometheus_query(query)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus has no answer to {query!r}")
        time.sleep(0.5)


def main():
    receiver = start_receiver()
    status, app = api("POST", "/api/v1/app", {"name": "metrics check"})
    assert status == 201, (status, app)
    status, endpoint = api("POST", f"/api/v1/app/{app['id']}/endpoint", {"url": f"http://127.0.0.1:{receiver.server_port}/hook"})
    assert status == 201, (status, endpoint)
    status, _ = api("POST", f"/api/v1/app/{app['id']}/msg", {"payload": "not an object"})
    assert status == 422, status

    stop, sent = threading.Event(), [0]
    sender = threading.Thread(target=traffic, args=(stop, app["id"], sent))
    sender.start()
    try:
        deadline = time.monotonic() + 60
        up = wait_for_prometheus('up{job="hookd"} == 1', deadline)
        print(f"Prometheus scrapes hookd: {up[0]['metric']}")
        rate = wait_for_prometheus("rate(hookd_messages_accepted_total[1m]) > 0", deadline)
        print(f"rate(hookd_messages_accepted_total[1m]) = {rate[0]['value'][1]}")
        p99 = wait_for_prometheus(
            "histogram_quantile(0.99, sum by (le) (rate(hookd_attempt_duration_seconds_bucket[1m]))) >= 0",
            deadline,
        )
        print(f"p99 attempt duration = {p99[0]['value'][1]} s")
        # The README's stale-queue alert reads this gauge.
        wait_for_prometheus("max(hookd_oldest_due_delivery_age_seconds) >= 0", deadline)
        requests = wait_for_prometheus(
            'hookd_http_requests_total{route="/api/v1/app/{app_id}/msg",method="POST",status="422"} == 1',
            deadline,
        )
        print(f"422s on the message route, as Prometheus stored them: {requests[0]['metric']}")
    finally:
        stop.set()
        sender.join()

    # Every message sent is accepted and (the receiver answering 204) delivered once.
    deadline = time.monotonic() + 30
    while True:
        fams = families(scrape())
        delivered = value(fams, "hookd_attempts", "hookd_attempts_total", outcome="success", error_class="none")
        if delivered >= sent[0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check_format(fams, [app["id"], endpoint["id"]])
    accepted = value(fams, "hookd_messages_accepted", "hookd_messages_accepted_total")
    assert accepted == sent[0], (accepted, sent[0])
    assert delivered == sent[0], (delivered, sent[0])
    assert value(fams, "hookd_first_attempt_latency_seconds", "hookd_first_attempt_latency_seconds_count") == sent[0]
    assert value(fams, "hookd_endpoints", "hookd_endpoints", state="enabled") == 1
    assert value(fams, "hookd_deliveries_pending", "hookd_deliveries_pending") == 0
    assert value(fams, "hookd_store_up", "hookd_store_up") == 1
    print(f"/metrics parsed by prometheus_client: {len(fams)} families, {sent[0]} messages accepted and delivered")
    receiver.shutdown()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
