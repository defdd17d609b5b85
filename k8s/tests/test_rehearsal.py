"""The rehearsal (see rehearsal.py): the manifests' Deployments run as real processes and probed as
the kubelet would, then the same run with one thing renamed must fail.

Needs the release binaries (`cargo build --release --bins`, or BOOKSTORE_BIN_DIR) and, for the
PostgreSQL half, TEST_POSTGRES_URL naming a superuser on a local server (CI sets it); without it the
services run on SQLite, unless BOOKSTORE_REQUIRE_POSTGRES=1 makes that an error.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import os
import queue
import threading
import time
import urllib.request

import grpc
import pytest

from manifests import OVERLAYS, by_kind, render
from rehearsal import Cluster, RehearsalError, await_probe, default_bin_dir, prepare_postgres, rehearse

BIN_DIR = default_bin_dir()


@pytest.fixture(scope="module")
def postgres():
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("BOOKSTORE_REQUIRE_POSTGRES") == "1":
            pytest.fail("BOOKSTORE_REQUIRE_POSTGRES=1 but TEST_POSTGRES_URL is not set")
        print("rehearsal: no TEST_POSTGRES_URL, the stateful services run on SQLite")
        return None
    return url


def _postgres_for(objects, url):
    return prepare_postgres(objects, url) if url else None


@pytest.fixture(scope="module", autouse=True)
def binaries():
    missing = [b for b in ("marketplace", "recommendations", "users", "gateway", "loadgen") if not (BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"no release binaries {missing} in {BIN_DIR}: run `cargo build --release --bins`")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_starts_listens_on_its_service_ports_and_passes_its_probes(overlay, postgres):
    objects = render(overlay)
    seen = rehearse(objects, BIN_DIR, _postgres_for(objects, postgres), check_shutdown=True)
    # The kind overlay also runs loadgen against the gateway, so dashboards move from the start.
    expected = {"marketplace", "recommendations", "users", "gateway"} | ({"loadgen"} if overlay == "kind" else set())
    started = collections.Counter(p.deployment for p in seen["_cluster"].pods.values())
    assert set(started) == expected
    # As many pods as the manifests say: recommendations' two replicas on one database included.
    assert started["recommendations"] == 2, started
    assert set(n for n in seen if not n.startswith("_")) == set(seen["_cluster"].pods)
    for name, line in seen["_shutdown"].items():
        print(f"{name}: {line}")


@contextlib.contextmanager
def _running_suite(postgres):
    """The kind overlay's pods started and Ready (no shutdown check), stopped afterwards."""
    objects = render("kind")
    cluster = Cluster(objects, _postgres_for(objects, postgres), BIN_DIR)
    try:
        for pod in cluster.pods.values():
            cluster.start(pod)
        for pod in cluster.pods.values():
            await_probe(pod, "startupProbe")
            await_probe(pod, "readinessProbe", limit_s=60)
        yield cluster
    finally:
        cluster.stop_all()


def _call(base, path, method="GET", body=None, token=None):
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def test_the_page_and_the_api_answer_through_the_gateway_wired_as_the_manifests_say(postgres):
    seen = {}
    with _running_suite(postgres) as cluster:
        gateway = cluster.pods["gateway"]
        base = f"http://{gateway.ip}:{gateway.port('http')}"
        with urllib.request.urlopen(f"{base}/api/v1/books?page_size=2", timeout=10) as r:
            books = json.load(r)
        assert r.status == 200 and len(books["books"]) == 2, books
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and books["books"][0]["title"].split()[0] in page
        body = json.dumps({"email": "k8s@example.org", "display_name": "K", "password": "correct horse battery"})
        request = urllib.request.Request(f"{base}/api/v1/users", data=body.encode(), method="POST",
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            seen["sign-up"] = r.status
        assert seen["sign-up"] == 201
        with urllib.request.urlopen(f"{base}/api/v1/recommendations/popular?page_size=1", timeout=10) as r:
            assert r.status == 200


# ---- the recommendations replicas agree -------------------------------------------------------

RECOMMENDATIONS = "/bookstore.recommendations.v1.RecommendationsService/"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rate_directly(pod, token, book_id, stars):
    """RateBook on one replica's own gRPC port (RateBookRequest: book_id = 1, stars = 2)."""
    request = b"\x08" + _varint(book_id) + b"\x10" + _varint(stars)
    with grpc.insecure_channel(f"{pod.ip}:{pod.port('grpc')}") as channel:
        rate = channel.unary_unary(RECOMMENDATIONS + "RateBook")
        rate(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)


def _index(pod):
    with urllib.request.urlopen(f"http://{pod.ip}:{pod.port('admin')}/index", timeout=2) as r:
        return json.load(r)


def _follow_feed(base, events, stop):
    """The gateway's live feed (SSE), each `data:` line's JSON put on `events`."""
    with urllib.request.urlopen(f"{base}/api/v1/ratings/stream", timeout=30) as r:
        events.put("open")
        while not stop.is_set():
            line = r.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                events.put(json.loads(line[5:]))


def test_the_recommendations_replicas_agree_whichever_takes_the_write(postgres):
    """Two replicas on one database, as the Deployment says: a write taken by either reaches the
    other's feed and index; their GET /index digests meet at the same log position."""
    with _running_suite(postgres) as cluster:
        first, second = cluster.replicas("recommendations")
        gateway = cluster.pods["gateway"]
        base = f"http://{gateway.ip}:{gateway.port('http')}"  # its recommendations: the first replica
        account = {"email": "replicas@example.org", "password": "correct horse battery"}
        assert _call(base, "/api/v1/users", "POST", {**account, "display_name": "R"})[0] == 201
        token = _call(base, "/api/v1/sessions", "POST", account)[1]["access_token"]

        # The first replica's feed (through the gateway) carries a rating the second one took.
        events, stop = queue.Queue(), threading.Event()
        threading.Thread(target=_follow_feed, args=(base, events, stop), daemon=True).start()
        assert events.get(timeout=10) == "open"
        _rate_directly(second, token, 9_871, 2)
        deadline, seen = time.monotonic() + 5, []
        while not any(e.get("book_id") == 9_871 and e.get("stars") == 2 for e in seen):
            try:
                seen.append(events.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"the first replica's feed lacks the second one's rating within 5 s: {seen}")
        stop.set()

        # Writes through the gateway (the first replica) and straight to the second.
        for book, stars in ((1, 5), (2, 4), (3, 5)):
            assert _call(base, f"/api/v1/me/ratings/{book}", "PUT", {"stars": stars}, token)[0] in (200, 201)
        for book, stars in ((4, 5), (1, 3)):
            _rate_directly(second, token, book, stars)
        mine = _call(base, "/api/v1/me/ratings?page_size=10", token=token)[1]["ratings"]
        assert {r["book_id"]: r["stars"] for r in mine} == {9_871: 2, 1: 3, 2: 4, 3: 5, 4: 5}, mine

        # A replica answers a write once it has applied it, so the second one's position now is at
        # or past every write above. loadgen rates too: compare the replicas when both stand at one
        # position past that, with no gaps.
        written = _index(second)["position"]
        started, last = time.monotonic(), None
        while time.monotonic() - started < 10:
            last = a, b = _index(first), _index(second)
            if a["position"] == b["position"] >= written and a["open_gaps"] == b["open_gaps"] == 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the replicas did not meet at one log position within 10 s: {last}")
        assert a == b, (a, b)
        assert a["ratings"] >= 5, a
        print(f"replicas agree {time.monotonic() - started:.2f}s after the last write: {a}")


# ---- a renamed port, env var or health service breaks the rehearsal ---------------------------------

def _deployment_container(objects, name):
    return by_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]


def _rename_env(objects):
    for e in _deployment_container(objects, "marketplace")["env"]:
        if e["name"] == "GRPC_ADDR":
            e["name"] = "GRPC_ADDRESS"


def _rename_health_service(objects):
    c = _deployment_container(objects, "marketplace")
    c["readinessProbe"]["grpc"]["service"] = "bookstore.marketplace.v1.Marketplace"


def _rename_container_port(objects):
    c = _deployment_container(objects, "marketplace")
    c["ports"][0]["name"] = "grpc-api"


def _wrong_container_port(objects):
    c = _deployment_container(objects, "marketplace")
    c["ports"][0]["containerPort"] = 50061


def _wrong_admin_port_in_probe(objects):
    c = _deployment_container(objects, "marketplace")
    c["livenessProbe"]["httpGet"]["port"] = 9092


def _wrong_bind_port(objects):
    for e in _deployment_container(objects, "marketplace")["env"]:
        if e["name"] == "ADMIN_ADDR":
            e["value"] = "0.0.0.0:9099"


def _missing_secret_key(objects):
    for e in _deployment_container(objects, "marketplace")["env"]:
        if e["name"] == "PAGE_TOKEN_SECRET":
            e["valueFrom"]["secretKeyRef"]["key"] = "PAGE_SECRET"


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (_rename_env, r"marketplace: (startupProbe failed|exited with 1 during startupProbe)"),
        (_rename_health_service, "readinessProbe failed"),
        (_rename_container_port, "no container port named 'grpc'"),
        (_wrong_container_port, "marketplace:50061: nothing listens there"),
        (_wrong_admin_port_in_probe, "livenessProbe failed"),
        (_wrong_bind_port, "containerPort admin=9091 not listening"),
        (_missing_secret_key, "does not exist"),
    ],
    ids=["renamed env var", "renamed health service", "renamed port", "wrong containerPort",
         "probe on the wrong port", "binds another port", "missing secret key"],
)
def test_the_rehearsal_fails_when_the_manifest_and_the_binary_disagree(break_it, expected):
    objects = copy.deepcopy(render("kind"))
    break_it(objects)
    # Readiness is retried for as long as the test allows (the kubelet never gives up on it): a
    # short limit here, since the probe is meant to fail.
    with pytest.raises(RehearsalError, match=expected):
        rehearse(objects, BIN_DIR, None, only={"marketplace"}, check_shutdown=False, report=lambda _: None,
                 readiness_limit_s=6)
