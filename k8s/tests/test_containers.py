"""The image, run: the Dockerfile's runtime image (built by `make images PREBUILT=1` on a local base,
see k8s/scripts/local-base-image.sh) runs the whole suite as containers on a private Docker network,
each with the command and env its Deployment gives it, reaching the others by their Service names
(network aliases), as uid 10001 with a read-only root filesystem, no capabilities and
no-new-privileges; the page and the API answer through the gateway container.

The stateful services use SQLite on a tmpfs here (no PostgreSQL image can be pulled on this
machine); their PostgreSQL wiring is what the rehearsal (test_rehearsal.py) checks.
Fails, never skips, when Docker is not there: `make k8s-containers` starts dockerd first.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from manifests import by_kind, config_maps, render, secrets
from rehearsal import resolve_env

IMAGE = os.environ.get("BOOKSTORE_IMAGE", "bookstore:dev")
DOCKER = os.environ.get("DOCKER", "docker")


def docker(*args, check=True, timeout=120) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def suite():
    try:
        docker("info", timeout=30)
    except (AssertionError, FileNotFoundError) as e:
        pytest.fail(f"Docker is not usable here ({e}); start dockerd (make k8s-containers does)")
    docker("image", "inspect", IMAGE)
    objects = render("kind")
    cms, scrts = config_maps(objects), secrets(objects)
    services = by_kind(objects, "Service")
    run_id = uuid.uuid4().hex[:8]
    network = f"bookstore-test-{run_id}"
    docker("network", "create", "--driver", "bridge", network)
    names = []
    try:
        for name, d in sorted(by_kind(objects, "Deployment").items()):
            if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "bookstore":
                continue  # the observability stack's images cannot be pulled here
            container = d["spec"]["template"]["spec"]["containers"][0]
            ctx = {**d["spec"]["template"]["spec"]["securityContext"], **container["securityContext"]}
            env = resolve_env(container, cms, scrts)
            args = ["run", "-d", "--name", f"{name}-{run_id}", "--network", network,
                    "--network-alias", name, "--read-only", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges",
                    "--user", f"{ctx['runAsUser']}:{ctx['runAsGroup']}",
                    "--memory", container["resources"]["limits"]["memory"].replace("Mi", "m")]
            if env.get("DATABASE_URL", "").startswith("postgres://"):
                # PostgreSQL stands in as SQLite on a tmpfs (what an emptyDir would be).
                args += ["--tmpfs", f"/data:rw,size=64m,uid={ctx['runAsUser']}"]
                env["DATABASE_URL"] = f"sqlite:///data/{name}.db?mode=rwc"
            # Docker has no Service port mapping: the Service port must be the container port.
            # (loadgen has no Service: nothing calls it but Prometheus, by pod address.)
            for p in (services.get(name) or {}).get("spec", {}).get("ports", []):
                named = {cp["name"]: cp["containerPort"] for cp in container["ports"]}
                assert named.get(p["targetPort"], p["targetPort"]) == p["port"], (name, p)
            if name == "gateway":
                args += ["-p", "127.0.0.1::8080"]
            for k, v in env.items():
                args += ["-e", f"{k}={v}"]
            args += [IMAGE, *container["command"], *(container.get("args") or [])]
            docker(*args)
            names.append(f"{name}-{run_id}")
        port = docker("port", f"gateway-{run_id}", "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
        yield {"base": f"http://127.0.0.1:{port}", "containers": names}
    finally:
        for n in names:
            if os.environ.get("BOOKSTORE_KEEP_LOGS"):
                print(docker("logs", n, check=False))
            docker("rm", "-f", n, check=False)
        docker("network", "rm", network, check=False)


def get(url, data=None, method="GET", timeout=5):
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(url, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = get(url)
            if status == 200:
                return body
            last = (status, body[:200])
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200: {last}")


def test_the_image_is_small_and_runs_as_a_non_root_user():
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE))
    print(f"image {IMAGE}: {size / 1e6:.1f} MB")
    assert docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE) == "10001:10001"
    # One executable for the five binaries and the libraries it loads (issue 29: at most 40 MB).
    assert size <= 40e6, f"the image is {size / 1e6:.1f} MB, over 40 MB"


def test_the_image_holds_the_executable_its_links_and_no_shell():
    for name in ("marketplace", "recommendations", "users", "gateway", "loadgen"):
        out = docker("run", "--rm", "--read-only", IMAGE, f"/usr/local/bin/{name}", "--version")
        assert out.startswith(f"{name} "), out
    shell = subprocess.run([DOCKER, "run", "--rm", IMAGE, "/bin/sh", "-c", "true"],
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode != 0, "the image has a shell"


def test_every_container_runs_read_only_as_uid_10001(suite):
    for name in suite["containers"]:
        state = json.loads(docker("inspect", name))[0]
        assert state["State"]["Running"], docker("logs", name, check=False)
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["HostConfig"]["CapDrop"] == ["ALL"]
        status = open(f"/proc/{state['State']['Pid']}/status").read()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["10001"] * 4, uid_line


def test_the_page_and_the_api_answer_through_the_gateway_container(suite):
    base = suite["base"]
    books = json.loads(wait_for(f"{base}/api/v1/books?page_size=3"))
    assert len(books["books"]) == 3
    page = wait_for(f"{base}/")
    assert "<html" in page.lower() and books["books"][0]["title"].split()[0] in page
    book = wait_for(f"{base}/books/{books['books'][0]['id']}")
    assert books["books"][0]["title"].split()[0] in book
    body = json.dumps({"email": "container@example.org", "display_name": "C", "password": "correct horse battery"})
    deadline = time.monotonic() + 60
    while True:
        status, text = get(f"{base}/api/v1/users", body.encode(), "POST")
        if status == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # users turns SERVING once its database is migrated
    assert status == 201, text
    status, text = get(f"{base}/api/v1/sessions", json.dumps(
        {"email": "container@example.org", "password": "correct horse battery"}).encode(), "POST")
    assert status in (200, 201) and "access_token" in text
    popular = json.loads(wait_for(f"{base}/api/v1/recommendations/popular?page_size=2"))
    assert popular
