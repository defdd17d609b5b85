"""A rehearsal of the Deployments without a cluster: each Deployment's real binary is started with
the command, args and env its container is given (ConfigMap and Secret values resolved, `$(VAR)`
expanded), as many pods as the Deployment has replicas (or its HorizontalPodAutoscaler's
minReplicas), every pod on its own loopback address standing in for its pod IP, every Service DNS
name mapped to the address of the first pod it selects and the port its targetPort names, PostgreSQL
mapped to a local server (without one, a Deployment's replicas share one SQLite file). Then the
kubelet's side is played: the container must listen on the containerPort that each Service's
targetPort points to, and its startup, readiness and liveness probes are run as
the kubelet runs them (gRPC Health/Check with the probe's service, HTTP GET on path and port,
TCP connect) within the probe's own period and failure threshold.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from manifests import REPO, by_kind, config_maps, secrets, selects

IMAGE_BIN_DIR = "/usr/local/bin/"
# Loopback addresses standing in for pod IPs: 127.0.0.101, .102, ...
POD_IP_BASE = "127.0.0.{}"
NAMESPACE = "bookstore"


class RehearsalError(AssertionError):
    pass


@dataclass
class Pod:
    # The first replica is named after its Deployment, the others <deployment>-<index>.
    name: str
    ip: str
    labels: dict
    container: dict
    spec: dict
    deployment: str = ""
    index: int = 0
    env: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log: pathlib.Path | None = None

    def port(self, port) -> int:
        """A probe's or Service's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            return int(port)
        for p in self.container.get("ports") or []:
            if p.get("name") == port:
                return p["containerPort"]
        raise RehearsalError(f"{self.name}: no container port named {port!r}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log and self.log.exists() else ""


def resolve_env(container: dict, cms: dict, scrts: dict, pod_name: str = "pod",
                pod_ip: str = "127.0.0.1") -> dict[str, str]:
    """The environment the kubelet would give this container (envFrom first, then env)."""
    downward = {"metadata.name": pod_name, "metadata.namespace": NAMESPACE, "status.podIP": pod_ip,
                "spec.nodeName": "node", "spec.serviceAccountName": "default"}
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, store = source["configMapRef"], cms
        else:
            ref, store = source["secretRef"], scrts
        if ref["name"] not in store:
            if ref.get("optional"):
                continue
            raise RehearsalError(f"envFrom names a missing object {ref['name']}")
        env.update({prefix + k: v for k, v in store[ref["name"]].items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
            continue
        source = e.get("valueFrom") or {}
        for kind, store in (("configMapKeyRef", cms), ("secretKeyRef", scrts)):
            if kind in source:
                ref = source[kind]
                value = store.get(ref["name"], {}).get(ref["key"])
                if value is None:
                    if ref.get("optional"):
                        break
                    raise RehearsalError(f"env {e['name']}: {kind} {ref['name']}/{ref['key']} does not exist")
                env[e["name"]] = value
                break
        else:
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                if path not in downward:
                    raise RehearsalError(f"env {e['name']}: fieldRef {path} is not rehearsed")
                env[e["name"]] = downward[path]
            elif source:
                raise RehearsalError(f"env {e['name']}: unsupported valueFrom {source}")
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (`$$` escapes; unknown names stay as written)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


class Cluster:
    """The rendered objects, the pods standing in for the Deployments, and the address map."""

    def __init__(self, objects: list[dict], postgres: str | None, bin_dir: pathlib.Path,
                 only: set[str] | None = None):
        self.objects = objects
        self.bin_dir = bin_dir
        self.cms, self.secrets = config_maps(objects), secrets(objects)
        self.services = by_kind(objects, "Service")
        self.pods: dict[str, Pod] = {}
        hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler").values()
                if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"}
        ips = (POD_IP_BASE.format(101 + i) for i in range(150))
        for name, d in sorted(by_kind(objects, "Deployment").items()):
            template = d["spec"]["template"]
            if only and name not in only:
                continue
            if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "bookstore":
                continue  # the observability stack's images are not ours to run
            if not selects(d["spec"]["selector"].get("matchLabels", {}), template["metadata"]["labels"]):
                raise RehearsalError(f"Deployment {name}: its selector does not match its pod template")
            containers = template["spec"]["containers"]
            if len(containers) != 1:
                raise RehearsalError(f"Deployment {name}: expected one container")
            replicas = d["spec"].get("replicas", hpas[name]["spec"].get("minReplicas", 1) if name in hpas else 1)
            for index in range(replicas):
                pod_name = name if index == 0 else f"{name}-{index}"
                self.pods[pod_name] = Pod(pod_name, next(ips), template["metadata"]["labels"], containers[0],
                                          template["spec"], deployment=name, index=index)
        self.postgres = postgres  # "host:port" of the local server, or None for SQLite
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="bookstore-rehearsal-"))
        # Readable by the pods' non-root user but not writable: a stand-in for the read-only root.
        self.workdir.chmod(0o755)

    def replicas(self, deployment: str) -> list[Pod]:
        """The pods standing in for a Deployment's replicas, in order."""
        return [p for p in self.pods.values() if p.deployment == deployment]

    # ---- addresses ------------------------------------------------------------------------
    def service_address(self, host: str, port: int) -> str | None:
        """Where a connection to Service `host`:`port` lands here: pod address and target port."""
        parts = host.split(".")
        name = parts[0]
        if parts[1:] not in ([], [NAMESPACE], [NAMESPACE, "svc"], [NAMESPACE, "svc", "cluster", "local"]):
            return None
        service = self.services.get(name)
        if service is None:
            return None
        ports = [p for p in service["spec"]["ports"] if p["port"] == port]
        if not ports:
            raise RehearsalError(f"Service {name} has no port {port}")
        target = ports[0].get("targetPort", port)
        selector = service["spec"].get("selector") or {}
        backends = [p for p in self.pods.values() if selects(selector, p.labels)]
        if backends:
            # A headless Service's name resolves to every ready pod (the gateway balances over
            # them); here it stands for the first one, and tests reach the others by address.
            return f"{backends[0].ip}:{backends[0].port(target)}"
        statefulsets = [s for s in by_kind(self.objects, "StatefulSet").values()
                        if selects(selector, s["spec"]["template"]["metadata"]["labels"])]
        if statefulsets and statefulsets[0]["metadata"]["name"] == "postgres":
            container = statefulsets[0]["spec"]["template"]["spec"]["containers"][0]
            numbers = {p["name"]: p["containerPort"] for p in container["ports"]}
            if numbers.get(target, target) != 5432:
                raise RehearsalError(f"Service {name}: targetPort {target} is not PostgreSQL's 5432")
            return self.postgres or "sqlite"
        if any(selects(selector, d["spec"]["template"]["metadata"]["labels"])
               for d in by_kind(self.objects, "Deployment").values()):
            return None  # a Deployment not rehearsed (`only`, or the observability stack's)
        raise RehearsalError(f"Service {name} selects no pod in the manifests")

    def localise(self, pod: Pod, env: dict[str, str]) -> dict[str, str]:
        """Pod-IP binds and Service names replaced by the loopback addresses standing in for them."""
        out = {}
        for key, value in env.items():
            value = re.sub(r"^0\.0\.0\.0:(\d+)$", lambda m: f"{pod.ip}:{m.group(1)}", value)

            try:
                value = self._swap_address(value)
            except _UseSqlite:
                # One file per Deployment: its replicas share it, as they share a PostgreSQL database.
                value = f"sqlite://{self.workdir / pod.deployment}.db?mode=rwc"
            out[key] = value
        return out

    def _swap_address(self, value: str) -> str:
        """A URL's (or a bare host:port's) Service host and port replaced by where they land."""
        m = re.fullmatch(r"([a-z][a-z0-9+.-]*)://([^/?#]*)(.*)", value)
        if m:
            scheme, netloc, rest = m.groups()
            userinfo, _, hostport = netloc.rpartition("@")
            host, _, port = hostport.partition(":")
            if not port.isdigit():
                return value
            address = self.service_address(host, int(port))
            if address is None:
                return value
            if address == "sqlite":
                raise _UseSqlite()
            return f"{scheme}://{userinfo + '@' if userinfo else ''}{address}{rest}"
        m = re.fullmatch(r"([a-z0-9][a-z0-9.-]*):(\d+)", value)
        if m:
            address = self.service_address(m.group(1), int(m.group(2)))
            if address == "sqlite":
                raise _UseSqlite()
            return address or value
        return value

    # ---- processes ------------------------------------------------------------------------
    def start(self, pod: Pod) -> None:
        c = pod.container
        command = list(c.get("command") or [])
        if not command or not command[0].startswith(IMAGE_BIN_DIR):
            raise RehearsalError(f"{pod.name}: command {command} does not run a binary from the image")
        built = self.bin_dir / command[0][len(IMAGE_BIN_DIR):]
        if not built.exists():
            raise RehearsalError(f"{pod.name}: the image has no {command[0]} (looked for {built})")
        # A copy in a world-readable directory, as in the image: the build tree may sit somewhere
        # (a root-only home) that the pod's non-root user cannot reach.
        binary = self.workdir / "bin" / built.name
        if not binary.exists():
            binary.parent.mkdir(mode=0o755, exist_ok=True)
            shutil.copy2(built, binary)
            binary.chmod(0o555)
        raw_env = resolve_env(c, self.cms, self.secrets, f"{pod.deployment}-{pod.index}", pod.ip)
        pod.env = self.localise(pod, raw_env)
        args = [expand(a, raw_env) for a in command[1:] + list(c.get("args") or [])]
        pod.log = self.workdir / f"{pod.name}.log"
        ctx = pod.spec.get("securityContext") or {}
        ctx.update(c.get("securityContext") or {})
        kwargs = {}
        if os.geteuid() == 0 and ctx.get("runAsUser"):
            # As the kubelet would: the manifest's uid/gid, in a directory it cannot write to.
            kwargs = {"user": ctx["runAsUser"], "group": ctx.get("runAsGroup", ctx["runAsUser"]),
                      "extra_groups": []}
            if pod.env.get("DATABASE_URL", "").startswith("sqlite"):
                os.chown(self.workdir, ctx["runAsUser"], 0)
        env = {"PATH": "/usr/bin:/bin", **pod.env}
        with open(pod.log, "wb") as log:
            pod.process = subprocess.Popen([str(binary), *args], env=env, cwd=self.workdir,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, **kwargs)

    def stop_all(self) -> None:
        for pod in self.pods.values():
            if pod.process and pod.process.poll() is None:
                pod.process.kill()
                pod.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class _UseSqlite(Exception):
    pass


# ---- probes, as the kubelet runs them ----------------------------------------------------------
def run_probe(pod: Pod, probe: dict) -> tuple[bool, str]:
    timeout = probe.get("timeoutSeconds", 1)
    if "grpc" in probe:
        g = probe["grpc"]
        target = f"{pod.ip}:{g['port']}"
        try:
            with grpc.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=g.get("service", "")),
                                   timeout=timeout)
            ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            return ok, f"grpc {target} {g.get('service', '')!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        except grpc.RpcError as e:
            return False, f"grpc {target} {g.get('service', '')!r}: {e.code().name} {e.details()}"
    if "httpGet" in probe:
        h = probe["httpGet"]
        url = f"{h.get('scheme', 'HTTP').lower()}://{pod.ip}:{pod.port(h['port'])}{h.get('path', '/')}"
        request = urllib.request.Request(url, headers={x["name"]: x["value"] for x in h.get("httpHeaders") or []})
        request.add_header("User-Agent", "kube-probe/1.37")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return 200 <= r.status < 400, f"GET {url}: {r.status}"
        except urllib.error.HTTPError as e:
            return False, f"GET {url}: {e.code}"
        except OSError as e:
            return False, f"GET {url}: {e}"
    if "tcpSocket" in probe:
        port = pod.port(probe["tcpSocket"]["port"])
        try:
            with socket.create_connection((pod.ip, port), timeout=timeout):
                return True, f"tcp {pod.ip}:{port}: open"
        except OSError as e:
            return False, f"tcp {pod.ip}:{port}: {e}"
    raise RehearsalError(f"{pod.name}: probe kind not rehearsed here: {sorted(probe)}")


def await_probe(pod: Pod, kind: str, limit_s: float | None = None) -> str:
    """Run a probe every periodSeconds until it succeeds `successThreshold` times; fail after
    `failureThreshold` failures (startup, as the kubelet does) or after `limit_s` (readiness)."""
    probe = pod.container.get(kind)
    if probe is None:
        return f"{kind}: none"
    period = probe.get("periodSeconds", 10)
    threshold = probe.get("failureThreshold", 3)
    initial = probe.get("initialDelaySeconds", 0)
    if initial:
        time.sleep(initial)
    failures, detail = 0, ""
    deadline = time.monotonic() + (limit_s if limit_s is not None else threshold * period + 1)
    while True:
        if pod.process and pod.process.poll() is not None:
            raise RehearsalError(f"{pod.name}: exited with {pod.process.returncode} during {kind}\n{pod.logs()}")
        started = time.monotonic()
        ok, detail = run_probe(pod, probe)
        if ok:
            return f"{kind}: {detail}"
        failures += 1
        if (limit_s is None and failures >= threshold) or time.monotonic() >= deadline:
            raise RehearsalError(f"{pod.name}: {kind} failed {failures} times, last: {detail}\n{pod.logs()}")
        time.sleep(max(0.0, period - (time.monotonic() - started)))


def listening(ip: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=timeout):
        return True
    return False


def rehearse(objects: list[dict], bin_dir: pathlib.Path, postgres: str | None,
             only: set[str] | None = None, report=print, check_shutdown: bool = True,
             readiness_limit_s: float = 60) -> dict:
    """Start every (or `only` these) Deployment(s), check ports and probes; return what was seen."""
    cluster = Cluster(objects, postgres, bin_dir, only)
    seen: dict[str, list[str]] = {}
    try:
        for pod in cluster.pods.values():
            cluster.start(pod)
        for pod in cluster.pods.values():
            seen[pod.name] = lines = []
            lines.append(await_probe(pod, "startupProbe"))
            # Every Service selecting this pod must reach a port it listens on.
            for sname, service in cluster.services.items():
                if not selects(service["spec"].get("selector") or {}, pod.labels):
                    continue
                for p in service["spec"]["ports"]:
                    target = pod.port(p.get("targetPort", p["port"]))
                    declared = {cp["containerPort"] for cp in pod.container.get("ports") or []}
                    if target not in declared:
                        raise RehearsalError(f"Service {sname}: targetPort {p.get('targetPort')} is not a containerPort of {pod.name}")
                    if not listening(pod.ip, target):
                        raise RehearsalError(f"Service {sname} -> {pod.name}:{target}: nothing listens there\n{pod.logs()}")
                    lines.append(f"Service {sname}:{p['port']} -> {pod.ip}:{target} listening")
            for cp in pod.container.get("ports") or []:
                if not listening(pod.ip, cp["containerPort"]):
                    raise RehearsalError(f"{pod.name}: containerPort {cp['name']}={cp['containerPort']} not listening\n{pod.logs()}")
        for pod in cluster.pods.values():
            seen[pod.name].append(await_probe(pod, "readinessProbe", limit_s=readiness_limit_s))
            seen[pod.name].append(await_probe(pod, "livenessProbe"))
        seen["_cluster"] = cluster  # type: ignore[assignment]
        if check_shutdown:
            seen["_shutdown"] = shutdown(cluster)  # type: ignore[assignment]
        for name, lines in seen.items():
            if not name.startswith("_"):
                report(f"{name}:\n  " + "\n  ".join(lines))
        return seen
    finally:
        cluster.stop_all()


def shutdown(cluster: Cluster) -> dict[str, str]:
    """SIGTERM every pod, as the kubelet does: readiness must fail at once while the pod still
    listens (the shutdown delay, so endpoints drop it before it stops accepting), and the process
    must exit 0 within terminationGracePeriodSeconds."""
    out = {}
    started = time.monotonic()
    for pod in cluster.pods.values():
        pod.process.send_signal(signal.SIGTERM)
    for pod in cluster.pods.values():
        probe = pod.container["readinessProbe"]
        ok, detail = run_probe(pod, probe)
        deadline = time.monotonic() + 2
        while ok and time.monotonic() < deadline:
            time.sleep(0.05)
            ok, detail = run_probe(pod, probe)
        if ok:
            raise RehearsalError(f"{pod.name}: still ready after SIGTERM: {detail}")
        if "NOT_SERVING" not in detail and ": 503" not in detail:
            raise RehearsalError(f"{pod.name}: stopped listening at once after SIGTERM: {detail}")
        out[pod.name] = f"unready {time.monotonic() - started:.2f}s after SIGTERM, still listening ({detail})"
    for pod in cluster.pods.values():
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        try:
            code = pod.process.wait(timeout=max(0.1, grace - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"{pod.name}: still running after terminationGracePeriodSeconds={grace}") from None
        if code != 0:
            raise RehearsalError(f"{pod.name}: exited {code} after SIGTERM\n{pod.logs()}")
        out[pod.name] += f"; exited 0 after {time.monotonic() - started:.1f}s of {grace}s"
    return out


# ---- PostgreSQL: the StatefulSet's init script against a local server --------------------------
def prepare_postgres(objects: list[dict], admin_url: str) -> str:
    """Run the postgres-init ConfigMap's scripts against the local server at `admin_url` (a
    superuser) with the StatefulSet's env, after dropping what an earlier run created; return the
    server's host:port for the services' DATABASE_URLs."""
    u = urllib.parse.urlsplit(admin_url)
    statefulset = by_kind(objects, "StatefulSet")["postgres"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = resolve_env(container, config_maps(objects), secrets(objects))
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": u.hostname, "PGPORT": str(u.port or 5432),
            "PGPASSWORD": urllib.parse.unquote(u.password or ""), "PGDATABASE": "postgres"}
    init_volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "init")
    scripts = config_maps(objects)[init_volume["configMap"]["name"]]
    for role in ("recommendations", "users"):
        subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qc",
                        f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)', "-U", u.username],
                       env=base, check=True, capture_output=True, timeout=60)
        subprocess.run(["psql", "-qc", f'DROP ROLE IF EXISTS "{role}"', "-U", u.username],
                       env=base, check=True, capture_output=True, timeout=60)
    with tempfile.TemporaryDirectory() as d:
        for name, body in sorted(scripts.items()):
            path = pathlib.Path(d) / name
            path.write_text(body)
            result = subprocess.run(["bash", str(path)], env={**base, **env, "POSTGRES_USER": u.username},
                                    capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise RehearsalError(f"postgres init script {name} failed:\n{result.stderr}")
    return f"{u.hostname}:{u.port or 5432}"


def default_bin_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("BOOKSTORE_BIN_DIR", REPO / "target" / "release"))
