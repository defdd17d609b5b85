"""The Pod Security Standards "restricted" profile, check by check, as the pod-security-admission
code (k8s.io/pod-security-admission/policy, level restricted, version latest) applies them.

Each `check_*` takes a pod spec (and the pod's metadata) and returns the reasons it is refused, so
a test can both assert "no reasons" for the real manifests and "this reason" for a broken one.
The restricted level includes every baseline check, so both lists are here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

# baseline: capabilities that may be added (restricted allows only NET_BIND_SERVICE).
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUME_SOURCES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}


def containers(spec: dict) -> Iterator[dict]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _csc(c: dict) -> dict:
    return c.get("securityContext") or {}


def _psc(spec: dict) -> dict:
    return spec.get("securityContext") or {}


# ---- baseline -------------------------------------------------------------------------------

def check_host_namespaces(spec, meta):
    return [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]


def check_privileged(spec, meta):
    return [f"container {c['name']}: privileged" for c in containers(spec) if _csc(c).get("privileged")]


def check_capabilities_baseline(spec, meta):
    out = []
    for c in containers(spec):
        for cap in (_csc(c).get("capabilities") or {}).get("add") or []:
            if cap not in BASELINE_CAPABILITIES:
                out.append(f"container {c['name']}: adds capability {cap}")
    return out


def check_host_path_volumes(spec, meta):
    return [f"volume {v['name']}: hostPath" for v in spec.get("volumes") or [] if "hostPath" in v]


def check_host_ports(spec, meta):
    return [
        f"container {c['name']}: hostPort {p['hostPort']}"
        for c in containers(spec)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]


def check_app_armor(spec, meta):
    out = []
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/"):
            if value != "runtime/default" and not value.startswith("localhost/"):
                out.append(f"annotation {key}={value}")
    profiles = [("pod", _psc(spec).get("appArmorProfile"))]
    profiles += [(f"container {c['name']}", _csc(c).get("appArmorProfile")) for c in containers(spec)]
    for where, profile in profiles:
        if profile and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where}: appArmorProfile {profile.get('type')}")
    return out


def check_selinux(spec, meta):
    out = []
    options = [("pod", _psc(spec).get("seLinuxOptions"))]
    options += [(f"container {c['name']}", _csc(c).get("seLinuxOptions")) for c in containers(spec)]
    for where, opts in options:
        if not opts:
            continue
        if opts.get("type", "") not in SELINUX_TYPES:
            out.append(f"{where}: seLinuxOptions.type {opts['type']}")
        if opts.get("user") or opts.get("role"):
            out.append(f"{where}: seLinuxOptions user/role set")
    return out


def check_proc_mount(spec, meta):
    return [
        f"container {c['name']}: procMount {_csc(c)['procMount']}"
        for c in containers(spec)
        if _csc(c).get("procMount") not in (None, "Default")
    ]


def check_seccomp_baseline(spec, meta):
    out = []
    if (_psc(spec).get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod: seccompProfile Unconfined")
    for c in containers(spec):
        if (_csc(c).get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"container {c['name']}: seccompProfile Unconfined")
    return out


def check_sysctls(spec, meta):
    return [
        f"sysctl {s['name']}"
        for s in _psc(spec).get("sysctls") or []
        if s["name"] not in SAFE_SYSCTLS
    ]


def check_windows_host_process(spec, meta):
    out = []
    if (_psc(spec).get("windowsOptions") or {}).get("hostProcess"):
        out.append("pod: windowsOptions.hostProcess")
    for c in containers(spec):
        if (_csc(c).get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"container {c['name']}: windowsOptions.hostProcess")
    return out


# ---- restricted -----------------------------------------------------------------------------

def check_volume_types(spec, meta):
    out = []
    for v in spec.get("volumes") or []:
        sources = set(v) - {"name"}
        if not sources <= RESTRICTED_VOLUME_SOURCES:
            out.append(f"volume {v['name']}: {', '.join(sorted(sources - RESTRICTED_VOLUME_SOURCES))}")
    return out


def check_allow_privilege_escalation(spec, meta):
    return [
        f"container {c['name']}: allowPrivilegeEscalation is not false"
        for c in containers(spec)
        if _csc(c).get("allowPrivilegeEscalation") is not False
    ]


def check_run_as_non_root(spec, meta):
    pod_value = _psc(spec).get("runAsNonRoot")
    out = []
    if pod_value is False:
        out.append("pod: runAsNonRoot=false")
    for c in containers(spec):
        value = _csc(c).get("runAsNonRoot")
        if value is False:
            out.append(f"container {c['name']}: runAsNonRoot=false")
        elif value is None and pod_value is not True:
            out.append(f"container {c['name']}: runAsNonRoot unset (and not set on the pod)")
    return out


def check_run_as_user(spec, meta):
    out = []
    if _psc(spec).get("runAsUser") == 0:
        out.append("pod: runAsUser=0")
    out += [f"container {c['name']}: runAsUser=0" for c in containers(spec) if _csc(c).get("runAsUser") == 0]
    return out


def check_seccomp_restricted(spec, meta):
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = (_psc(spec).get("seccompProfile") or {}).get("type")
    out = []
    if pod_type is not None and pod_type not in allowed:
        out.append(f"pod: seccompProfile {pod_type}")
    for c in containers(spec):
        c_type = (_csc(c).get("seccompProfile") or {}).get("type")
        if c_type is not None and c_type not in allowed:
            out.append(f"container {c['name']}: seccompProfile {c_type}")
        elif c_type is None and pod_type not in allowed:
            out.append(f"container {c['name']}: seccompProfile unset (and not set on the pod)")
    return out


def check_capabilities_restricted(spec, meta):
    out = []
    for c in containers(spec):
        caps = _csc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"container {c['name']}: does not drop ALL capabilities")
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                out.append(f"container {c['name']}: adds capability {cap}")
    return out


RESTRICTED_CHECKS: list[Callable[[dict, dict], list[str]]] = [
    check_host_namespaces, check_privileged, check_capabilities_baseline, check_host_path_volumes,
    check_host_ports, check_app_armor, check_selinux, check_proc_mount, check_seccomp_baseline,
    check_sysctls, check_windows_host_process,
    check_volume_types, check_allow_privilege_escalation, check_run_as_non_root, check_run_as_user,
    check_seccomp_restricted, check_capabilities_restricted,
]


def restricted_violations(spec: dict, meta: dict | None = None) -> list[str]:
    """Every reason the restricted profile would refuse a pod with this spec."""
    meta = meta or {}
    return [reason for check in RESTRICTED_CHECKS for reason in check(spec, meta)]


def project_violations(spec: dict) -> list[str]:
    """The project's rules beyond the profile: read-only root, no service-account token."""
    out = []
    if spec.get("automountServiceAccountToken") is not False:
        out.append("pod: automountServiceAccountToken is not false")
    if not spec.get("serviceAccountName") or spec.get("serviceAccountName") == "default":
        out.append("pod: runs as the default ServiceAccount")
    for c in containers(spec):
        if _csc(c).get("readOnlyRootFilesystem") is not True:
            out.append(f"container {c['name']}: readOnlyRootFilesystem is not true")
        if not (c.get("resources") or {}).get("requests") or not (c.get("resources") or {}).get("limits"):
            out.append(f"container {c['name']}: no resource requests/limits")
    return out
