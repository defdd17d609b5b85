"""Rendering and reading the Kubernetes manifests: the helpers every k8s test shares.

`render(overlay)` runs `kubectl kustomize` on k8s/overlays/<overlay> exactly as `make deploy` does
and returns the objects; the rest pick pod templates, Services and config out of them.
"""

from __future__ import annotations

import base64
import functools
import os
import pathlib
import subprocess

import yaml

K8S = pathlib.Path(__file__).resolve().parent.parent
REPO = K8S.parent
OVERLAYS = ("kind", "minikube")
KUBECTL = os.environ.get("KUBECTL", "kubectl")

# Kinds whose objects carry a pod template, and where it sits.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


@functools.lru_cache(maxsize=None)
def _render_text(overlay: str) -> str:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[dict]:
    """The objects `kubectl kustomize k8s/overlays/<overlay>` renders (fresh copies each call)."""
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def pod_spec(obj: dict) -> dict | None:
    """The pod spec inside a workload object, or None for other kinds."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def pod_metadata(obj: dict) -> dict:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("metadata", {})
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {})
    return obj["spec"]["template"].get("metadata", {})


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o.get("kind") == kind}


def config_maps(objects: list[dict]) -> dict[str, dict[str, str]]:
    return {name: dict(o.get("data") or {}) for name, o in by_kind(objects, "ConfigMap").items()}


def secrets(objects: list[dict]) -> dict[str, dict[str, str]]:
    out = {}
    for name, o in by_kind(objects, "Secret").items():
        values = {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
        values.update(o.get("stringData") or {})
        out[name] = values
    return out


def selects(selector: dict, labels: dict) -> bool:
    """Whether a Service-style equality selector matches a set of labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
