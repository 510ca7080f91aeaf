"""Serving throughput: `audience container serve` against the original example's serving stack
(Flask under gunicorn with its input_fn/predict_fn/output_fn, bench/python/original_serve.py),
both on the same model and the same MultiRecord payloads, loaded by wrk from a second process.

usage: serve.py AUDIENCE_BIN BENCH_PYTHON BUNDLE_DIR FEATURES_CSV OUT_JSON [ROWS_PER_PAYLOAD] [SECONDS]

FEATURES_CSV: the model's feature columns in the model's order, comma-separated, with a header.
Prints and writes requests/s, rows/s, wrk's latency percentiles, and the slowest /ping seen by a
probe sending one every 20 ms during the load, for both servers; checks first that both answer a
payload with the same scores (within 1e-12).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

audience, python, bundle, features_csv, out_json = [os.path.abspath(a) for a in sys.argv[1:6]]
rows_per_payload = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
seconds = int(sys.argv[7]) if len(sys.argv) > 7 else 15
here = os.path.dirname(os.path.abspath(__file__))
cores = os.cpu_count() or 1
if shutil.which("wrk") is None:
    raise SystemExit("serve.py: wrk is missing (Debian: apt-get install wrk; bench/run installs it)")

lines = open(features_csv).read().split("\n")
payload = "\n".join(lines[1 : rows_per_payload + 1]) + "\n"
work = tempfile.mkdtemp()
payload_file = os.path.join(work, "payload.csv")
open(payload_file, "w").write(payload)
lua = os.path.join(work, "post.lua")
open(lua, "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\n'
    f'local f = io.open("{payload_file}", "r")\nwrk.body = f:read("*a")\nf:close()\n'
)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ping(url, name):
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/ping", timeout=2).status == 200:
                return
        except Exception:
            time.sleep(0.1)
    log = os.path.join(work, "gunicorn.log")
    raise SystemExit(f"{name} at {url} never answered /ping\n" + (open(log).read()[-2000:] if os.path.exists(log) else ""))


def post(url):
    req = urllib.request.Request(url + "/invocations", data=payload.encode(), method="POST",
                                 headers={"Content-Type": "text/csv"})
    return [float(x) for x in urllib.request.urlopen(req, timeout=60).read().decode().split()]


def load(url):
    pings = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t = time.perf_counter()
            try:
                urllib.request.urlopen(url + "/ping", timeout=5).read()
                pings.append(time.perf_counter() - t)
            except Exception:
                pings.append(5.0)
            time.sleep(0.02)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", lua, url + "/invocations"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        stop.set()
        thread.join()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        return float(m.group(1)) * scale

    assert not errors, f"{url}: {errors.group(0)}"
    return {
        "requests_per_s": rps,
        "rows_per_s": rps * rows_per_payload,
        "latency_ms": {"p50": pct(50), "p99": pct(99)},
        "ping_max_ms": max(pings) * 1e3,
        "ping_median_ms": sorted(pings)[len(pings) // 2] * 1e3,
    }


results = {"rows_per_payload": rows_per_payload, "seconds": seconds, "concurrency": 8, "cores": cores}
manifest = json.load(open(os.path.join(bundle, "audience-model.json")))
categorical = [str(i) for i, f in enumerate(manifest["features"]) if f["kind"] == "categorical"]

# audience container serve, as `docker run IMAGE serve` runs it (the bundle in /opt/ml/model).
opt = os.path.join(work, "opt_ml")
shutil.copytree(bundle, os.path.join(opt, "model"))
port = free_port()
ours = subprocess.Popen([audience, "container", "serve", "--host", "127.0.0.1", "--port", str(port)],
                        env={**os.environ, "AUDIENCE_OPT_ML": opt}, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
url_ours = f"http://127.0.0.1:{port}"
# The original example's stack, gunicorn workers = cores.
port2 = free_port()
theirs = subprocess.Popen(
    [os.path.join(os.path.dirname(python), "gunicorn"), "-w", str(cores), "-b", f"127.0.0.1:{port2}",
     "--chdir", os.path.join(here, "python"), "original_serve:app"],
    env={**os.environ, "MODEL_FILE": os.path.join(bundle, "model.txt"), "CATEGORICAL": ",".join(categorical)},
    stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "gunicorn.log"), "w"))
url_theirs = f"http://127.0.0.1:{port2}"
try:
    wait_ping(url_ours, "audience")
    wait_ping(url_theirs, "gunicorn")
    a, b = post(url_ours), post(url_theirs)
    assert len(a) == len(b) == rows_per_payload, (len(a), len(b))
    diff = max(abs(x - y) for x, y in zip(a, b))
    assert diff <= 1e-12, f"the two servers disagree by {diff}"
    results["max_abs_difference"] = diff
    results["audience"] = load(url_ours)
    results["original_example_stack"] = load(url_theirs)
finally:
    for p in (ours, theirs):
        p.terminate()
        p.wait()
results["ratio_rows_per_s"] = results["audience"]["rows_per_s"] / results["original_example_stack"]["rows_per_s"]
print(json.dumps(results, indent=1))
json.dump(results, open(out_json, "w"), indent=1)
