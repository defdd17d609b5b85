"""The rendered manifests, checked without a cluster: every overlay renders, every object is valid
for the Kubernetes versions kind and minikube ship (strict: unknown fields are errors), every pod
passes the restricted Pod Security profile, and the suite's own rules hold (probes, shutdown,
resources, policies).
"""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest

from manifests import OVERLAYS, by_kind, pod_metadata, pod_spec, render, workloads
from pod_security import project_violations, restricted_violations

# kind v0.33 defaults to Kubernetes 1.37; minikube and older kind releases to 1.34-1.36.
KUBERNETES_VERSIONS = ("1.34.0", "1.35.0", "1.36.0", "1.37.0")
SERVICES = {
    "marketplace": {"grpc": 50051, "admin": 9091},
    "recommendations": {"grpc": 50052, "admin": 9092},
    "users": {"grpc": 50053, "admin": 9093},
    "gateway": {"http": 8080, "admin": 9090},
}
SUITE_LABEL = ("app.kubernetes.io/part-of", "bookstore")


def suite(objects):
    """The suite's own objects (not the observability stack's)."""
    return [o for o in objects if (o["metadata"].get("labels") or {}).get(SUITE_LABEL[0]) == SUITE_LABEL[1]
            or o["kind"] == "Namespace"]


def name_of(o):
    return f"{o['kind']}/{o['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_in_strict_mode(overlay, version):
    errors = []
    for obj in render(overlay):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name_of(obj)}: {e.message} at {'.'.join(map(str, e.path))}")
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_an_unknown_field():
    deployment = copy.deepcopy(by_kind(render("kind"), "Deployment")["gateway"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_passes_the_restricted_pod_security_profile(overlay):
    found = {}
    for obj in workloads(render(overlay)):
        found[name_of(obj)] = restricted_violations(pod_spec(obj), pod_metadata(obj))
    assert found, "no workloads rendered"
    assert all(not v for v in found.values()), found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_has_a_read_only_root_its_own_service_account_and_no_token(overlay):
    objects = render(overlay)
    accounts = by_kind(objects, "ServiceAccount")
    found = {}
    for obj in workloads(suite(objects)):
        spec = pod_spec(obj)
        problems = project_violations(spec)
        account = accounts.get(spec.get("serviceAccountName"))
        if account is None:
            problems.append("its ServiceAccount is not in the manifests")
        elif account.get("automountServiceAccountToken") is not False:
            problems.append("its ServiceAccount mounts a token")
        found[name_of(obj)] = problems
    assert all(not v for v in found.values()), found


@pytest.mark.parametrize(
    "break_it, reason",
    [
        (lambda s, c: c["securityContext"]["capabilities"].update(drop=[]), "does not drop ALL"),
        (lambda s, c: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
        (lambda s, c: (s["securityContext"].pop("runAsNonRoot"), c["securityContext"].pop("runAsNonRoot")),
         "runAsNonRoot unset"),
        (lambda s, c: c["securityContext"].update(runAsUser=0), "runAsUser=0"),
        (lambda s, c: (s["securityContext"].pop("seccompProfile"), c["securityContext"].pop("seccompProfile")),
         "seccompProfile unset"),
        (lambda s, c: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s, c: s.setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (lambda s, c: c["ports"][0].update(hostPort=8080), "hostPort"),
        (lambda s, c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "NET_ADMIN"),
    ],
)
def test_the_restricted_checks_refuse_a_pod_that_breaks_them(break_it, reason):
    spec = copy.deepcopy(pod_spec(by_kind(render("kind"), "Deployment")["marketplace"]))
    break_it(spec, spec["containers"][0])
    assert any(reason in v for v in restricted_violations(spec)), restricted_violations(spec)


def test_the_namespace_enforces_the_restricted_profile():
    namespace = by_kind(render("kind"), "Namespace")["bookstore"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_deployment_service_account_pdb_and_scrape_annotations(overlay):
    objects = render(overlay)
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    pdbs = by_kind(objects, "PodDisruptionBudget")
    for name, ports in SERVICES.items():
        d = deployments[name]
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == [f"/usr/local/bin/{name}"]
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == ports
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(ports["admin"])
        assert annotations["prometheus.io/path"] == "/metrics"
        assert name in services and name in pdbs
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_are_probed_natively_on_their_named_health_service(overlay):
    deployments = by_kind(render(overlay), "Deployment")
    for name in ("marketplace", "recommendations", "users"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        readiness = container["readinessProbe"]["grpc"]
        assert readiness == {"port": SERVICES[name]["grpc"],
                             "service": f"bookstore.{name}.v1.{name.capitalize()}Service"}
        # Liveness never depends on another process.
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    gateway = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/livez"


def _env(container, config_maps, name):
    for e in container.get("env") or []:
        if e["name"] == name and "value" in e:
            return e["value"]
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref and name in config_maps.get(ref["name"], {}):
            return config_maps[ref["name"]][name]
    return None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_the_shutdown_delay_and_the_drain(overlay):
    objects = render(overlay)
    config_maps = {n: o.get("data") or {} for n, o in by_kind(objects, "ConfigMap").items()}
    for name in SERVICES:
        spec = by_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        delay = int(_env(container, config_maps, "SHUTDOWN_DELAY_MS") or 0)
        drain = int(_env(container, config_maps, "DRAIN_TIMEOUT_MS") or 10000)
        assert delay >= 1000, f"{name}: endpoints need time to drop the pod before it stops listening"
        pre_stop = 0
        sleep = (container.get("lifecycle") or {}).get("preStop", {}).get("sleep")
        if sleep:
            pre_stop = sleep["seconds"] * 1000
        grace = spec["terminationGracePeriodSeconds"] * 1000
        assert grace > pre_stop + delay + drain, f"{name}: {grace} ms <= {pre_stop}+{delay}+{drain} ms"


def _cpu_millis(q: str) -> float:
    return float(q[:-1]) if q.endswith("m") else float(q) * 1000


def _mebibytes(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", q)
    return float(m.group(1)) * units.get(m.group(2), 1 / 2**20)


def _replicas(objects, obj):
    hpas = [h for h in by_kind(objects, "HorizontalPodAutoscaler").values()
            if h["spec"]["scaleTargetRef"]["name"] == obj["metadata"]["name"]]
    if obj.get("kind") in ("Deployment", "StatefulSet"):
        return obj["spec"].get("replicas", hpas[0]["spec"]["minReplicas"] if hpas else 1)
    return 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_all_requests_with_the_observability_stack_fit_a_2_cpu_4_gib_laptop(overlay):
    objects = render(overlay)
    cpu = memory = 0.0
    for obj in workloads(objects):
        n = _replicas(objects, obj)
        for c in pod_spec(obj)["containers"] + (pod_spec(obj).get("initContainers") or []):
            requests = c["resources"]["requests"]
            cpu += n * _cpu_millis(requests["cpu"])
            memory += n * _mebibytes(requests["memory"])
    print(f"{overlay}: requests {cpu:.0f}m CPU, {memory:.0f} MiB")
    assert cpu <= 1000 and memory <= 2048, (cpu, memory)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_keeps_a_replica_through_drains_and_rollouts(overlay):
    objects = render(overlay)
    deployments, pdbs = by_kind(objects, "Deployment"), by_kind(objects, "PodDisruptionBudget")
    # recommendations too: its replicas agree by following one change log (issue 24).
    assert _replicas(objects, deployments["recommendations"]) == 2
    for name in SERVICES:
        d = deployments[name]
        assert _replicas(objects, d) >= 2, f"{name}: one replica is a single point of failure"
        budget = pdbs[name]["spec"]
        assert budget.get("minAvailable") == 1 and "maxUnavailable" not in budget, (name, budget)
        strategy = d["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", name
        assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}, (name, strategy)


# Connections a pod opens beside its pool (DATABASE_MAX_CONNECTIONS): recommendations LISTENs
# for the change log's commits on a session of its own.
EXTRA_CONNECTIONS = {"recommendations": 1}


def _postgres_settings(objects) -> dict[str, str]:
    """The `-c name=value` settings the StatefulSet passes to postgres."""
    args = pod_spec(by_kind(objects, "StatefulSet")["postgres"])["containers"][0].get("args") or []
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args[:-1]) if a == "-c")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pool_of_a_rollout_fits_postgres_max_connections(overlay):
    objects = render(overlay)
    config_maps = {n: o.get("data") or {} for n, o in by_kind(objects, "ConfigMap").items()}
    settings = _postgres_settings(objects)
    budget = int(settings.get("max_connections", 100)) - int(settings.get("superuser_reserved_connections", 3))
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler").values()}
    used, lines = 0, []
    for name, d in by_kind(suite(objects), "Deployment").items():
        container = pod_spec(d)["containers"][0]
        if not any(e["name"] == "DATABASE_URL" for e in container.get("env") or []):
            continue
        pool = _env(container, config_maps, "DATABASE_MAX_CONNECTIONS")
        assert pool is not None, f"{name}: DATABASE_MAX_CONNECTIONS unset (the binary's default is 10)"
        replicas = hpas[name]["spec"]["maxReplicas"] if name in hpas else _replicas(objects, d)
        surge = d["spec"]["strategy"].get("rollingUpdate", {}).get("maxSurge", 0)
        assert isinstance(surge, int), f"{name}: maxSurge {surge!r}: a count, so that the budget is exact"
        pods, per_pod = replicas + surge, int(pool) + EXTRA_CONNECTIONS.get(name, 0)
        used += pods * per_pod
        lines.append(f"{name} {pods} x {per_pod}")
    assert {"recommendations", "users"} <= {line.split()[0] for line in lines}, lines
    print(f"{overlay}: {', '.join(lines)} = {used} of {budget} PostgreSQL connections")
    assert used <= budget, (lines, used, budget)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_scales_on_cpu_and_is_the_only_door(overlay):
    objects = render(overlay)
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["spec"]["minReplicas"] >= 2
    services = by_kind(suite(objects), "Service")
    exposed = {n for n, s in services.items() if s["spec"].get("type") in ("NodePort", "LoadBalancer")}
    assert exposed == {"gateway"}
    assert services["gateway"]["spec"]["ports"][0]["nodePort"] == 30080


def _policy_allows(policies, src_labels, dst_labels, port, dst_ports):
    """Whether the NetworkPolicies let a pod with src_labels reach dst_labels:port (same namespace)."""
    def matches(selector, labels):
        for k, v in (selector.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for e in selector.get("matchExpressions") or []:
            if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
                return False
        return True

    def port_ok(rule_ports, numeric, named):
        if not rule_ports:
            return True
        return any(p.get("port") in (numeric, named) for p in rule_ports)

    named = {v: k for k, v in dst_ports.items()}.get(port)
    egress_ok = ingress_ok = False
    egress_selected = ingress_selected = False
    for p in policies:
        spec = p["spec"]
        if matches(spec["podSelector"], src_labels) and "Egress" in spec["policyTypes"]:
            egress_selected = True
            for rule in spec.get("egress") or []:
                peers = rule.get("to")
                if (not peers or any("podSelector" in peer and "namespaceSelector" not in peer
                                     and matches(peer["podSelector"], dst_labels) for peer in peers)) \
                        and port_ok(rule.get("ports"), port, named):
                    egress_ok = True
        if matches(spec["podSelector"], dst_labels) and "Ingress" in spec["policyTypes"]:
            ingress_selected = True
            for rule in spec.get("ingress") or []:
                peers = rule.get("from")
                if (not peers or any("podSelector" in peer and "namespaceSelector" not in peer
                                     and matches(peer["podSelector"], src_labels) for peer in peers)) \
                        and port_ok(rule.get("ports"), port, named):
                    ingress_ok = True
    return (egress_ok or not egress_selected) and (ingress_ok or not ingress_selected)


def test_network_policies_allow_exactly_the_arrows_of_the_architecture():
    objects = render("kind")
    policies = list(by_kind(suite(objects), "NetworkPolicy").values())
    assert any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies)
    pods = {n: {"app.kubernetes.io/name": n} for n in list(SERVICES) + ["postgres", "prometheus"]}
    ports = {n: dict(p) for n, p in SERVICES.items()}
    ports["postgres"] = {"postgres": 5432}
    ports["prometheus"] = {}
    arrows = {("gateway", "marketplace", 50051), ("gateway", "recommendations", 50052),
              ("gateway", "users", 50053), ("users", "recommendations", 50052),
              ("recommendations", "postgres", 5432),
              ("users", "postgres", 5432)}
    arrows |= {("prometheus", n, p["admin"]) for n, p in SERVICES.items()}
    every_port = {p for ps in ports.values() for p in ps.values()}
    for src in pods:
        for dst in pods:
            if src == dst:
                continue
            for port in every_port:
                allowed = _policy_allows(policies, pods[src], pods[dst], port, ports[dst])
                assert allowed == ((src, dst, port) in arrows), (src, dst, port, allowed)
