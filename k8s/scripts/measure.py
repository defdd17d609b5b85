#!/usr/bin/env python3
"""Measures what the manifests' resource requests and limits are sized from: the suite started as the
kind overlay's Deployments describe it (the rehearsal's set-up: k8s/tests/rehearsal.py), then

  idle    RSS (VmRSS in /proc/PID/status) and CPU (utime+stime from /proc/PID/stat) over 10 s;
  loaded  a bounded mix through the gateway (catalog pages, searches, book pages, sign-ups and
          sign-ins, ratings, recommendations) from 8 client threads for 20 s: CPU used / wall time
          = cores, and peak RSS (VmHWM).

Usage: python3 k8s/scripts/measure.py   (needs target/release binaries; TEST_POSTGRES_URL for
PostgreSQL, else SQLite). Prints one table; `make k8s-measure` runs it.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from manifests import render  # noqa: E402
from rehearsal import Cluster, await_probe, default_bin_dir, prepare_postgres  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid: int, key: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def request(base, path, method="GET", body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def client(base, stop_at, counter, seed):
    rng = random.Random(seed)
    email = f"load{seed}@example.org"
    request(base, "/api/v1/users", "POST", {"email": email, "display_name": "L", "password": "correct horse battery"})
    while time.monotonic() < stop_at:
        roll = rng.random()
        if roll < 0.05:
            status, body = request(base, "/api/v1/sessions", "POST", {"email": email, "password": "correct horse battery"})
            token = json.loads(body).get("access_token") if status == 200 else None
            if token:
                request(base, f"/api/v1/me/ratings/{rng.randint(1, 200)}", "PUT", {"stars": rng.randint(1, 5)}, token)
                request(base, "/api/v1/me/recommendations", token=token)
        elif roll < 0.35:
            request(base, f"/api/v1/books?page_size=20")
        elif roll < 0.55:
            request(base, f"/api/v1/books/search?q=the+{rng.choice(['hobbit', 'road', 'girl', 'war'])}&page_size=10")
        elif roll < 0.75:
            request(base, f"/books/{rng.randint(1, 10000)}")
        elif roll < 0.9:
            request(base, "/")
        else:
            request(base, f"/api/v1/books/{rng.randint(1, 500)}/similar")
        counter[seed] += 1


def main() -> None:
    objects = render("kind")
    url = os.environ.get("TEST_POSTGRES_URL")
    postgres = prepare_postgres(objects, url) if url else None
    cluster = Cluster(objects, postgres, default_bin_dir())
    try:
        for pod in cluster.pods.values():
            cluster.start(pod)
        t0 = time.monotonic()
        for pod in cluster.pods.values():
            await_probe(pod, "startupProbe")
            await_probe(pod, "readinessProbe", limit_s=30)
        print(f"all Ready {time.monotonic() - t0:.2f}s after start")
        pids = {name: pod.process.pid for name, pod in cluster.pods.items()}
        time.sleep(2)
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        time.sleep(10)
        idle = {n: (cpu_seconds(p) - before[n]) / 10 for n, p in pids.items()}
        idle_rss = {n: status_kib(p, "VmRSS") for n, p in pids.items()}
        gateway = cluster.pods["gateway"]
        base = f"http://{gateway.ip}:{gateway.port('http')}"
        counter = [0] * 8
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(base, start + 20, counter, i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        wall = time.monotonic() - start
        loaded = {n: (cpu_seconds(p) - before[n]) / wall for n, p in pids.items()}
        print(f"load: {sum(counter)} requests in {wall:.1f}s from 8 threads ({sum(counter) / wall:.0f}/s, "
              f"the client shares the same 2 cores)")
        print(f"{'service':16} {'idle RSS':>9} {'idle CPU':>9} {'peak RSS':>9} {'loaded CPU':>11}")
        for n, p in pids.items():
            print(f"{n:16} {idle_rss[n] / 1024:7.1f}Mi {idle[n] * 1000:7.1f}m {status_kib(p, 'VmHWM') / 1024:7.1f}Mi "
                  f"{loaded[n] * 1000:9.0f}m")
    finally:
        cluster.stop_all()


if __name__ == "__main__":
    main()
