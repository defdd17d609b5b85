"""The rehearsal (see rehearsal.py): the manifests' Deployments run as real processes and probed as
the kubelet would, then the same run with one thing renamed must fail.

Needs the release binaries (`cargo build --release --bins`, or BOOKSTORE_BIN_DIR) and, for the
PostgreSQL half, TEST_POSTGRES_URL naming a superuser on a local server (CI sets it); without it the
services run on SQLite, unless BOOKSTORE_REQUIRE_POSTGRES=1 makes that an error.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.request

import pytest

from manifests import OVERLAYS, by_kind, render
from rehearsal import RehearsalError, default_bin_dir, prepare_postgres, rehearse

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
    assert set(n for n in seen if not n.startswith("_")) == expected
    for name, line in seen["_shutdown"].items():
        print(f"{name}: {line}")


def test_the_page_and_the_api_answer_through_the_gateway_wired_as_the_manifests_say(postgres):
    objects = render("kind")
    seen = {}

    def look(_report):
        pass

    # Rehearse without the shutdown, then talk to the gateway while everything is up.
    from rehearsal import Cluster, await_probe  # noqa: PLC0415

    cluster = Cluster(objects, _postgres_for(objects, postgres), BIN_DIR)
    try:
        for pod in cluster.pods.values():
            cluster.start(pod)
        for pod in cluster.pods.values():
            await_probe(pod, "startupProbe")
            await_probe(pod, "readinessProbe", limit_s=60)
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
    finally:
        cluster.stop_all()


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
