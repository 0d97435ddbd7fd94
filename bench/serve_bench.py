#!/usr/bin/env python3
"""`difftx serve` under load (issue 23): aggregate generated tokens/s, p50/p99 time to first token
and per-token latency at 1, 4 and 16 concurrent clients, on the SmolLM2-135M-shaped model converted
with default flags (random weights; the Mistral tokenizer fixture), 2 threads, loopback only.

Each client is a bounded loop: --requests streamed completions one after another (greedy,
max_tokens --max-tokens, a prompt of its own), timed from the request to the first text chunk
(TTFT) and between text chunks (per-token latency). One server with --parallel 16 answers every
level (the deployment a user runs); one with --parallel 1 gives the best single-client baseline, and
the target (16 clients >= 4x one client's tokens/s) is checked on the --parallel 16 server, and
against the faster single-client row as a stricter comparison.

Usage: bench/serve_bench.py --build build --model out/bench/diff --tokenizer DIR [--threads 2]
       [--requests 4] [--max-tokens 64] [--out bench/RESULTS-serve.md]"""
import argparse
import datetime
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

from machine import cpu_description
from report_file import write_lines

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start_server(difftx, model, tokenizer, threads, parallel, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([difftx, "--threads", str(threads), "serve", model, "--tokenizer", tokenizer, "--port", "0",
                             "--parallel", str(parallel), "--ctx-size", "1024"], stdout=log, stderr=log)
    for _ in range(1200):
        text = open(log_path).read()
        if "ready:" in text:
            return proc, int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", text).group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"serve_bench.py: the server did not start:\n{open(log_path).read()}")


def stream_one(port, prompt, max_tokens):
    """One streamed completion: (ttft seconds, [gaps between text chunks], completion tokens)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"serve_bench.py: HTTP {resp.status}: {resp.read()[:300]}")
    times, tokens = [], 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        elif event["choices"] and event["choices"][0]["text"]:
            times.append(time.perf_counter())
    conn.close()
    if not times:
        return None
    return times[0] - t0, [b - a for a, b in zip(times, times[1:])], tokens


def run_level(port, clients, requests, max_tokens):
    ttfts, gaps, tokens = [], [], [0]
    lock = threading.Lock()

    def client(c):
        for r in range(requests):
            out = stream_one(port, f"Chapter {c * requests + r + 1}. In the morning the", max_tokens)
            if out:
                with lock:
                    ttfts.append(out[0])
                    gaps.extend(out[1])
                    tokens[0] += out[2]

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    def q(xs, p):  # percentile in ms; one sample is every percentile of itself, none gives nan
        if len(xs) > 1:
            return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] * 1000
        return xs[0] * 1000 if xs else float("nan")

    return {"clients": clients, "requests": clients * requests, "tokens": tokens[0], "seconds": wall,
            "tokens_per_s": tokens[0] / wall, "ttft_p50": q(ttfts, 50), "ttft_p99": q(ttfts, 99),
            "token_p50": q(gaps, 50), "token_p99": q(gaps, 99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=4, help="requests per client at each level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-serve.md"))
    a = ap.parse_args()
    difftx = os.path.join(a.build, "difftx")
    levels = [int(x) for x in a.levels.split(",")]
    rows = []
    log_dir = os.path.dirname(os.path.abspath(a.out)) if a.out.startswith(os.path.join(ROOT, "out")) else "/tmp"
    for parallel, level_set in ((1, [1]), (max(levels), levels)):
        proc, port = start_server(difftx, a.model, a.tokenizer, a.threads, parallel,
                                  os.path.join(log_dir, f"serve-bench-{parallel}.log"))
        try:
            stream_one(port, "Warm up.", 8)
            for clients in level_set:
                r = run_level(port, clients, a.requests, a.max_tokens)
                r["parallel"] = parallel
                rows.append(r)
                print(f"--parallel {parallel}, {clients} clients: {r['tokens_per_s']:.1f} tokens/s, TTFT p50 "
                      f"{r['ttft_p50']:.0f} ms p99 {r['ttft_p99']:.0f} ms, per token p50 {r['token_p50']:.1f} ms "
                      f"p99 {r['token_p99']:.1f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    single = max(r["tokens_per_s"] for r in rows if r["clients"] == 1)
    top = next(r for r in rows if r["clients"] == max(levels) and r["parallel"] == max(levels))
    same_server = next(r for r in rows if r["clients"] == 1 and r["parallel"] == max(levels))
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = cpu_description()
    lines = [
        "# `difftx serve` under load (issue 23)", "",
        f"{datetime.date.today()}, difftx {rev}, {cpu}, {os.cpu_count()} cores; server threads {a.threads}; model "
        f"`{os.path.relpath(a.model, ROOT)}` (SmolLM2-135M shape, default conversion, random weights), the Mistral "
        f"tokenizer fixture; each client {a.requests} streamed greedy completions of {a.max_tokens} tokens one after "
        "another, over loopback (`bench/serve_bench.py`, a row of `scripts/bench.sh`); OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')} (the clients share the cores).", "",
        "| server | clients | requests | generated tokens/s | TTFT p50 / p99 (ms) | per-token p50 / p99 (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| --parallel {r['parallel']} | {r['clients']} | {r['requests']} | {r['tokens_per_s']:.1f} | "
                     f"{r['ttft_p50']:.0f} / {r['ttft_p99']:.0f} | {r['token_p50']:.1f} / {r['token_p99']:.1f} |")
    same = top["tokens_per_s"] / same_server["tokens_per_s"]
    ratio = top["tokens_per_s"] / single
    lines += ["", "| target | measured | met |", "| --- | --- | --- |",
              f"| {max(levels)} clients >= 4x one client's tokens/s (both on the --parallel {max(levels)} server) | "
              f"{same:.2f}x | {'yes' if same >= 4 else 'no'} |",
              f"| stricter: against the faster single-client row (a --parallel 1 server, which pays for one row per "
              f"step instead of {max(levels)}) | {ratio:.2f}x | {'yes' if ratio >= 4 else 'no'} |"]
    write_lines(a.out, lines)


if __name__ == "__main__":
    main()
