"""Load test of `audience container serve` from a second process.

usage: load_test.py BASE_URL FEATURES_CSV EXPECTED_SCORES_CSV [REQUESTS] [CONCURRENCY]

FEATURES_CSV holds the model's feature columns (header, comma-separated) and EXPECTED_SCORES_CSV
the scores `audience score` gave the same rows. Sends REQUESTS payloads (default 1200), CONCURRENCY
at a time (default 8): CSV with and without a header line, CRLF, a byte-order mark, no final
newline, JSON lines (objects and arrays), and malformed payloads (wrong field counts, text in a
number). Meanwhile a thread pings /ping every 20 ms. Prints a JSON summary; every valid answer is
compared with the expected scores exactly, every malformed one must be a 400 naming its record.
"""
import concurrent.futures
import csv
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request

base, features_csv, expected_csv = sys.argv[1:4]
requests_total = int(sys.argv[4]) if len(sys.argv) > 4 else 1200
concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 8
rows = list(csv.reader(open(features_csv, newline="")))
header, rows = rows[0], rows[1:]
expected = [r[1] for r in csv.reader(open(expected_csv))][1:]
assert len(expected) == len(rows)


def post(body, content_type="text/csv", accept=None):
    req = urllib.request.Request(base + "/invocations", data=body, method="POST")
    req.add_header("Content-Type", content_type)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def csv_line(fields):
    out = []
    for f in fields:
        out.append('"' + f.replace('"', '""') + '"' if ("," in f or '"' in f) else f)
    return ",".join(out)


def job(i):
    rng = random.Random(i)
    start = rng.randrange(len(rows) - 300)
    n = rng.randint(1, 300)
    chunk = list(range(start, start + n))
    kind = rng.choice(["csv", "csv_header", "crlf_bom", "no_final_newline", "jsonl_object", "jsonl_array",
                       "bad_fields", "bad_number"])
    want = [expected[j] for j in chunk]
    if kind == "csv":
        body = "".join(csv_line(rows[j]) + "\n" for j in chunk)
    elif kind == "csv_header":
        body = csv_line(header) + "\n" + "".join(csv_line(rows[j]) + "\n" for j in chunk)
        want = ["score"] + want
    elif kind == "crlf_bom":
        body = "\ufeff" + "".join(csv_line(rows[j]) + "\r\n" for j in chunk)
    elif kind == "no_final_newline":
        body = "\n".join(csv_line(rows[j]) for j in chunk)
    elif kind == "jsonl_object":
        body = "".join(json.dumps(dict(zip(header, rows[j]))) + "\n" for j in chunk)
        status, text = post(body.encode(), "application/jsonlines", "text/csv")
        return kind, status, text, want, None
    elif kind == "jsonl_array":
        body = "".join(json.dumps(rows[j]) + "\n" for j in chunk)
        status, text = post(body.encode(), "application/jsonlines", "text/csv")
        return kind, status, text, want, None
    else:
        bad = rng.randrange(n)
        lines = [csv_line(rows[j]) for j in chunk]
        if kind == "bad_fields":
            lines[bad] = ",".join(rows[chunk[bad]][:-1])
        else:
            fields = list(rows[chunk[bad]])
            numeric = [k for k, v in enumerate(fields) if v.lstrip("-").replace(".", "").isdigit()]
            fields[numeric[0]] = "not-a-number"
            lines[bad] = csv_line(fields)
        body = "\n".join(lines) + "\n"
        status, text = post(body.encode())
        return kind, status, text, None, bad + 1
    status, text = post(body.encode())
    return kind, status, text, want, None


pings = []
stop = threading.Event()


def pinger():
    while not stop.is_set():
        t = time.perf_counter()
        with urllib.request.urlopen(base + "/ping", timeout=5) as r:
            assert r.status == 200 and r.read() == b""
        pings.append((time.perf_counter() - t) * 1000)
        time.sleep(0.02)


params = json.loads(urllib.request.urlopen(base + "/execution-parameters").read())
ping_thread = threading.Thread(target=pinger)
ping_thread.start()
failures = []
counts = {"valid": 0, "malformed": 0}
scored_rows = 0
started = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    for kind, status, text, want, bad_record in pool.map(job, range(requests_total)):
        if want is not None:
            got = text.split("\n")
            if status != 200 or got[-1] != "" or got[:-1] != want:
                failures.append(f"{kind}: status {status}, {len(got) - 1} lines for {len(want)}: {text[:200]!r}")
            counts["valid"] += 1
            scored_rows += len(want)
        else:
            if status != 400 or f"record {bad_record}:" not in text:
                failures.append(f"{kind}: status {status} for a bad record {bad_record}: {text[:200]!r}")
            counts["malformed"] += 1
elapsed = time.perf_counter() - started
stop.set()
ping_thread.join()
print(json.dumps({
    "requests": requests_total,
    "concurrency": concurrency,
    **counts,
    "failures": failures[:10],
    "failure_count": len(failures),
    "seconds": elapsed,
    "requests_per_second": requests_total / elapsed,
    "rows_per_second": scored_rows / elapsed,
    "pings": len(pings),
    "max_ping_ms": max(pings),
    "median_ping_ms": sorted(pings)[len(pings) // 2],
    "execution_parameters": params,
}))
