#!/usr/bin/python3
"""Checks the Kubernetes manifests (deploy/k8s) as `kubectl kustomize` renders them,
offline, without a cluster.

What is checked (check_manifests):
  - the objects: headless Service "ps" (port 2222 named grpc), StatefulSet "ps" behind it,
    Indexed Job "worker", and the ConfigMaps they read;
  - the cluster as every process sees it (flags over the MOBILENET_CLUSTER variable, with
    $(VAR) expanded the way the kubelet does): the PS list is ps-<i>.ps:2222 for every
    StatefulSet replica, in order; the worker list has one distinct entry per Job
    completion, and completions equal parallelism; PS and workers see the same lists;
  - --job_name, and --task_index taken from the pod (the StatefulSet pod-index label, the
    Job completion index) rather than written down;
  - the PS listens on 0.0.0.0:2222, its readiness, liveness and startup probes are gRPC
    probes of its plaintext health port (--health_address, containerPort "health"; port
    2222 speaks only TLS), it has a checkpoint PVC template mounted where --checkpoint_dir
    points and time to write its final checkpoint on SIGTERM; workers have no probes;
  - mutual TLS everywhere: every PS and worker gets --tls_cert_file/--tls_key_file of its
    own task (<role>-<index>.crt/.key, the index from the pod) and --tls_ca_file, all from
    its role's Secret (mobilenet-tls-ps, mobilenet-tls-worker) mounted whole and read-only,
    group-readable through fsGroup and by no one else; no --insecure;
  - a NetworkPolicy selects the PS pods and admits to port 2222 only pods of the job in
    this namespace (the workers and the PS themselves), and opens the health port;
  - metrics: every PS and worker pod serves them (--metrics_address=0.0.0.0:<port>) on a
    containerPort of that number named "metrics", and its prometheus.io/scrape ("true"),
    /port (that number) and /path (/metrics) annotations say so; the NetworkPolicy of the
    PS, and one of the workers, admit to that port only Prometheus (pods labelled
    app.kubernetes.io/name=prometheus in the namespace "monitoring"; not other pods of
    that namespace, nor pods so labelled in other namespaces, nor unrelated pods of the
    job's namespace), and the workers' admits nothing to any other port;
  - requests and limits of CPU and memory on every container, requests within limits;
  - the model, optimizer and schedule flags are the same on the PS and the workers.

The test also renders the shipped manifests, a copy resized with set_cluster_size.sh
(3 PS, 4 workers) and a deliberately inconsistent copy (cluster-size.yaml edited by hand),
checks that the consistency check rejects mutated manifests with clear messages, checks
deploy/k8s/prometheus-scrape.yml against the rendered pods (its relabelling simulated on
the labels Prometheus' pod discovery gives them: one target per running PS or worker pod,
in the job rules.yml expects, at its metrics port and path; none of a finished worker or
of another application's annotated pod), and that it catches mismatches, runs
deploy/k8s/make_cert_secret.sh (shipped and resized) and checks that its Secrets hold
every file the pods name, certificates carrying their task's name, signed by the CA and
matching their keys, and no CA key or key of another role, and,
when Debian's kubectl 1.20 (kustomize v2.0.3) can be had (--old_kubectl, or fetched with
`apt-get download kubernetes-client` into --cache_dir without installing it), that it
renders the same manifests.

kubectl: --kubectl, else $KUBECTL, else `kubectl` on PATH, else Debian's
kubernetes-client is installed with apt-get (as root).

With --bin_dir, mobilenet-ps and mobilenet-worker are run with the rendered arguments
and --version, so an unknown flag or a malformed value fails the test.

Usage: k8s_manifests_test.py [--bin_dir DIR] [--kubectl PATH] [--old_kubectl PATH]
                             [--cache_dir DIR]
"""

import argparse
import base64
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("FAILED: python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(1)

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S_DIR = os.path.join(SOURCE_DIR, "deploy", "k8s")

PS_PORT = 2222
PS_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
WORKER_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
# Set by the Job controller in every pod of an Indexed Job.
WORKER_INDEX_ENV = "JOB_COMPLETION_INDEX"
# The flags the parameter servers must share with the workers: the PS builds the sharding
# plan from the model flags and applies the updates with the optimizer and schedule ones.
SHARED_FLAGS = ["alpha", "resolution", "channels", "shallow", "seed", "optimizer",
                "learning_rate", "momentum", "rmsprop_decay", "rmsprop_epsilon",
                "epochs_per_decay", "lr_decay_factor", "staircase", "bn_moving_average_decay",
                "weight_ema_decay"]


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Reading a rendered manifest.

class FieldRef:
    """An environment variable the kubelet fills from the pod (downward API)."""

    def __init__(self, path):
        self.path = path

    def __repr__(self):
        return "<from the pod: %s>" % self.path


def find(docs, kind, name):
    for doc in docs:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    return None


def container_running(pod_spec, binary):
    """The container of `pod_spec` whose command (or first arg) is `binary`."""
    for c in pod_spec.get("containers", []):
        program = (c.get("command") or c.get("args") or [""])[0]
        if os.path.basename(program) == binary:
            return c
    return None


def container_env(docs, container, where, problems):
    """The container's environment: name -> string, or FieldRef for the downward API."""
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            continue
        cm = find(docs, "ConfigMap", ref.get("name"))
        if cm is None:
            problems.append("%s: envFrom names ConfigMap %r, which the manifests do not "
                            "contain" % (where, ref.get("name")))
            continue
        for key, value in (cm.get("data") or {}).items():
            env[source.get("prefix", "") + key] = str(value)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        value_from = var.get("valueFrom", {})
        if "fieldRef" in value_from:
            env[var["name"]] = FieldRef(value_from["fieldRef"].get("fieldPath"))
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            cm = find(docs, "ConfigMap", ref.get("name"))
            if cm is None or ref.get("key") not in (cm.get("data") or {}):
                problems.append("%s: env %s reads key %r of ConfigMap %r, which does not "
                                "exist" % (where, var["name"], ref.get("key"), ref.get("name")))
            else:
                env[var["name"]] = str(cm["data"][ref["key"]])
    return env


VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class FromPod:
    """A flag value the kubelet completes from the pod, e.g. /etc/x/ps-$(PS_INDEX).crt:
    `template` has "\0" where the downward-API field `field` goes."""

    def __init__(self, template, field):
        self.template = template
        self.field = field

    def render(self, value):
        return self.template.replace("\0", str(value))

    def __repr__(self):
        return repr(self.render("<%s>" % self.field.path))


def expand(arg, env, where, problems):
    """`arg` with $(VAR) replaced as the kubelet does. A reference to the downward API
    gives that FieldRef when it is the whole value after the flag's '=', a FromPod when it
    is part of the value."""
    found_fields = []

    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name not in env:
            problems.append("%s: %r refers to $(%s), which the container does not define "
                            "(the process would see it literally)" % (where, arg, name))
            return match.group(0)
        value = env[name]
        if isinstance(value, FieldRef):
            found_fields.append(value)
            return "\0"
        return value

    text = VAR_REFERENCE.sub(substitute, arg)
    if len(found_fields) == 1 and "=" in text:
        name, _, value = text.partition("=")
        if value == "\0":
            return name + "=", found_fields[0]
        if "\0" in value:
            return name + "=", FromPod(value, found_fields[0])
    return text, None


def process_flags(docs, container, where, problems):
    """The container's --flag=value arguments after $(VAR) expansion, and its env."""
    env = container_env(docs, container, where, problems)
    flags = {}
    for arg in command_line(container)[1:]:
        text, from_pod = expand(str(arg), env, where, problems)
        if not text.startswith("--"):
            continue
        name, _, value = text[2:].partition("=")
        flags[name] = from_pod if from_pod is not None else value
    return flags, env


def command_line(container):
    return list(container.get("command", [])) + list(container.get("args", []))


def cluster_of(flags, env, where, problems):
    """ps list, worker list, job name, task index as the binary merges them: flags over
    MOBILENET_CLUSTER, field by field."""
    description = {"ps": None, "worker": None, "job_name": None, "task_index": None}
    raw = env.get("MOBILENET_CLUSTER")
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError as e:
            problems.append("%s: MOBILENET_CLUSTER is not JSON (%s): %r" % (where, e, raw))
            parsed = {}
        cluster = parsed.get("cluster", {})
        description["ps"] = cluster.get("ps")
        description["worker"] = cluster.get("worker")
        task = parsed.get("task", {})
        description["job_name"] = task.get("type")
        description["task_index"] = task.get("index")
    if flags.get("ps_hosts"):
        description["ps"] = flags["ps_hosts"].split(",")
    if flags.get("worker_hosts"):
        description["worker"] = flags["worker_hosts"].split(",")
    if "job_name" in flags:
        description["job_name"] = flags["job_name"]
    if "task_index" in flags:
        description["task_index"] = flags["task_index"]
    return description


# ---------------------------------------------------------------------------------------
# Quantities ("500m", "2", "256Mi").

UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def quantity(text):
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    if not match or match.group(2) not in UNITS:
        raise ValueError("not a quantity: %r" % text)
    return float(match.group(1)) * UNITS[match.group(2)]


def check_resources(container, where, problems):
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(kind, {}):
                problems.append("%s: resources.%s.%s is not set" % (where, kind, resource))
    for resource in ("cpu", "memory"):
        request = resources.get("requests", {}).get(resource)
        limit = resources.get("limits", {}).get(resource)
        if request is None or limit is None:
            continue
        try:
            if quantity(request) > quantity(limit):
                problems.append("%s: %s request %s is above its limit %s"
                                % (where, resource, request, limit))
        except ValueError as e:
            problems.append("%s: %s" % (where, e))


# ---------------------------------------------------------------------------------------
# Transport security.

TLS_FLAGS = ("tls_cert_file", "tls_key_file", "tls_ca_file")
# The Secret each role's pods mount, and the files it holds (make_cert_secret.sh); no
# Secret holds the CA's key.
ROLE_SECRETS = {"ps": "mobilenet-tls-ps", "worker": "mobilenet-tls-worker"}
# A pod with labels unrelated to the job, which a NetworkPolicy must not admit to the PS.
# Where the shipped manifests mount the Secrets (the negative checks edit those mounts).
TLS_MOUNT = "/etc/mobilenet/tls"
STRANGER_LABELS = [{}, {"app.kubernetes.io/name": "some-other-app",
                        "app.kubernetes.io/component": "worker"}]

# Metrics: the pod annotations a Prometheus discovers pods by, and who may scrape. The
# NetworkPolicies admit to the metrics port only pods labelled PROMETHEUS_LABELS in the
# namespace named MONITORING_NAMESPACE (ps-networkpolicy.yaml says why); the job itself
# runs in a namespace named JOB_NAMESPACE for these checks.
SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
METRICS_PATH = "/metrics"
PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
JOB_NAMESPACE = {"kubernetes.io/metadata.name": "training"}
# (namespace labels, pod labels) of peers that must not reach a metrics port.
NOT_PROMETHEUS = ([(JOB_NAMESPACE, labels) for labels in STRANGER_LABELS] +
                  [(MONITORING_NAMESPACE, {"app.kubernetes.io/name": "grafana"}),
                   ({"kubernetes.io/metadata.name": "default"}, PROMETHEUS_LABELS)])
# The Prometheus scrape jobs for Kubernetes (not a Kubernetes object: checked against the
# rendered pods by check_scrape_config) and the job each pod component must land in.
SCRAPE_CONFIG = os.path.join(K8S_DIR, "prometheus-scrape.yml")
SCRAPE_JOBS = {"parameter-server": "mobilenet-ps", "worker": "mobilenet-worker"}


def check_health_port(ps_container, ps_flags, where, problems):
    """The PS's plaintext health port (--health_address, containerPort "health"), which
    every probe must use since port 2222 speaks only TLS; None when there is none."""
    address = ps_flags.get("health_address") or ""
    match = re.fullmatch(r"(0\.0\.0\.0|\[::\]):([0-9]+)", str(address))
    if not match:
        problems.append("%s: --health_address is %r; expected 0.0.0.0:<port>, the plaintext "
                        "health-only listener that the kubelet's gRPC probes (no TLS) reach"
                        % (where, address or None))
        health_port = None
    else:
        health_port = int(match.group(2))
        if health_port == PS_PORT:
            problems.append("%s: --health_address uses the PS port %d" % (where, PS_PORT))
        ports = {p.get("name"): p.get("containerPort") for p in ps_container.get("ports", [])}
        if ports.get("health") != health_port:
            problems.append("%s: no containerPort %d named health (ports %s)"
                            % (where, health_port, ports))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = ps_container.get(probe)
        if spec is None and probe == "startupProbe":
            continue
        port = (spec or {}).get("grpc", {}).get("port")
        if spec is None or port is None or port != health_port:
            problems.append("%s: %s is %s; expected a gRPC probe of the health port %s "
                            "(--health_address; port %d speaks only TLS, which probes do not)"
                            % (where, probe, spec, health_port, PS_PORT))
    return health_port


def check_metrics(template, container, flags, where, problems):
    """The process serves metrics on 0.0.0.0:<port> (--metrics_address), the container
    declares that port as "metrics", and the pod's prometheus.io annotations name it and
    /metrics. Returns the port, or None."""
    address = flags.get("metrics_address") or ""
    match = re.fullmatch(r"0\.0\.0\.0:([0-9]+)", str(address))
    if not match:
        problems.append("%s: --metrics_address is %r; expected 0.0.0.0:<port> (the pod's "
                        "address, IPv4: the endpoint cannot bind IPv6), which Prometheus "
                        "scrapes" % (where, address or None))
        return None
    port = int(match.group(1))
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    if ports.get("metrics") != port:
        problems.append("%s: no containerPort %d named metrics for --metrics_address=%s "
                        "(ports %s)" % (where, port, address, ports))
    annotations = template.get("metadata", {}).get("annotations") or {}
    for key, expected in ((SCRAPE_ANNOTATION, "true"), (PORT_ANNOTATION, str(port)),
                          (PATH_ANNOTATION, METRICS_PATH)):
        if annotations.get(key) != expected:
            problems.append("%s: the pod annotation %s is %r; expected %r (--metrics_address "
                            "%s)" % (where, key, annotations.get(key), expected, address))
    return port


def check_tls(role, pod, container, flags, index_field, where, problems):
    """Mutual TLS for the process: --tls_cert_file/--tls_key_file name the certificate of
    its own task (<role>-<index>, the index from the pod) and --tls_ca_file the CA's, all
    in the role's Secret, mounted whole and read-only, readable by the process's group
    (fsGroup) and nobody else; no --insecure."""
    if str(flags.get("insecure", "false")).lower() not in ("false", "0"):
        problems.append("%s: --insecure is set; every process must use mutual TLS" % where)
    missing = [f for f in TLS_FLAGS if not flags.get(f)]
    if missing:
        problems.append("%s: no %s; every process must use mutual TLS (certificates from the "
                        "Secret %s)" % (where, ", ".join("--" + f for f in missing),
                                        ROLE_SECRETS[role]))
        return
    expected = {"tls_cert_file": "%s-\0.crt" % role, "tls_key_file": "%s-\0.key" % role,
                "tls_ca_file": "ca.crt"}
    directories = set()
    for flag in TLS_FLAGS:
        value = flags[flag]
        if flag == "tls_ca_file":
            path = value if isinstance(value, str) else None
        elif isinstance(value, FromPod) and value.field.path == index_field:
            path = value.template
        else:
            path = None
        if path is None or os.path.basename(path) != expected[flag]:
            problems.append("%s: --%s is %r; expected <the Secret's mount>/%s, the file of "
                            "its own task with the index from the pod (%s)"
                            % (where, flag, value, expected[flag].replace("\0", "<index>"),
                               index_field))
            continue
        directories.add(os.path.dirname(path))
    if len(directories) != 1:
        if directories:
            problems.append("%s: the TLS files are in several folders %s; expected the one "
                            "where the Secret is mounted" % (where, sorted(directories)))
        return
    directory = directories.pop()
    mounts = [m for m in container.get("volumeMounts", [])
              if m.get("mountPath", "").rstrip("/") == directory]
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    if not mounts:
        problems.append("%s: nothing is mounted at %s, where the TLS files are expected"
                        % (where, directory))
        return
    mount = mounts[0]
    secret = volumes.get(mount.get("name"), {}).get("secret")
    if secret is None:
        problems.append("%s: %s is not a Secret volume (%s)"
                        % (where, directory, volumes.get(mount.get("name"))))
        return
    if secret.get("secretName") != ROLE_SECRETS[role]:
        problems.append("%s: the TLS files come from Secret %r; expected %r (made by "
                        "make_cert_secret.sh)" % (where, secret.get("secretName"),
                                                  ROLE_SECRETS[role]))
    if mount.get("readOnly") is not True:
        problems.append("%s: the Secret %s is mounted at %s without readOnly: true; keys must "
                        "be read-only" % (where, secret.get("secretName"), directory))
    if "subPath" in mount or secret.get("items"):
        problems.append("%s: the Secret is mounted by subPath or items; mount it whole, so "
                        "that rotated certificates reach the process" % where)
    mode = secret.get("defaultMode", 0o644)
    if mode & 0o007:
        problems.append("%s: the Secret's files are mode %o, readable by others; expected "
                        "0440 (group fsGroup)" % (where, mode))
    security = pod.get("securityContext", {})
    if security.get("fsGroup") is None or not mode & 0o040:
        problems.append("%s: the Secret's files are root's (mode %o, fsGroup %s): the "
                        "non-root process cannot read its key; set the pod's fsGroup and a "
                        "group-readable defaultMode" % (where, mode, security.get("fsGroup")))


def selects(selector, labels):
    """Whether the label selector (matchLabels, matchExpressions) selects `labels`."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def rule_covers(rule, port, container):
    """Whether a NetworkPolicy ingress rule applies to TCP `port` of `container`."""
    if not rule.get("ports"):
        return True
    names = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    for entry in rule["ports"]:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        number = entry.get("port")
        if number is None:
            return True
        number = names.get(number) if isinstance(number, str) else number
        if number == port or (number is not None and entry.get("endPort") and
                              number <= port <= entry["endPort"]):
            return True
    return False


def peer_admits(peer, namespace_labels, pod_labels):
    """Whether the NetworkPolicy peer (an entry of `from`) admits a pod with `pod_labels`
    in the namespace with `namespace_labels` (JOB_NAMESPACE: the policy's own)."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace_labels != JOB_NAMESPACE:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod_labels)


def ingress_rules(docs, labels):
    """(the NetworkPolicies selecting pods with `labels`, their ingress rules)."""
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy" and
                selects(d.get("spec", {}).get("podSelector"), labels)]
    rules = []
    for policy in policies:
        spec = policy.get("spec", {})
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            continue
        rules.extend(spec.get("ingress") or [])
    return policies, rules


def admits(rules, port, container, namespace_labels, pod_labels):
    """Whether one of the ingress `rules` admits that pod to TCP `port` of `container`."""
    for rule in rules:
        if not rule_covers(rule, port, container):
            continue
        peers = rule.get("from")
        if not peers or any(peer_admits(p, namespace_labels, pod_labels) for p in peers):
            return True
    return False


def check_metrics_peers(rules, port, container, where, problems):
    """Prometheus (PROMETHEUS_LABELS in MONITORING_NAMESPACE) is admitted to the metrics
    `port`, the pods of NOT_PROMETHEUS are not."""
    if not admits(rules, port, container, MONITORING_NAMESPACE, PROMETHEUS_LABELS):
        problems.append("%s: Prometheus (pods labelled %s in the namespace %s) is not "
                        "admitted to the metrics port %d" % (where, PROMETHEUS_LABELS,
                                                             MONITORING_NAMESPACE, port))
    for namespace_labels, pod_labels in NOT_PROMETHEUS:
        if admits(rules, port, container, namespace_labels, pod_labels):
            problems.append("%s: admits pods labelled %s in the namespace %s to the metrics "
                            "port %d; expected only Prometheus (pods labelled %s in %s)"
                            % (where, pod_labels, namespace_labels, port, PROMETHEUS_LABELS,
                               MONITORING_NAMESPACE))


def check_network_policy(docs, ps_labels, worker_labels, ps_container, health_port,
                         metrics_port, problems):
    """A NetworkPolicy selects the PS pods and admits, to port 2222, the job's pods (its
    workers, and the PS pods) and nothing else; the health port is open (the kubelet); the
    metrics port only to Prometheus."""
    policies, rules = ingress_rules(docs, ps_labels)
    if not policies:
        problems.append("no NetworkPolicy selects the PS pods (labels %s): every pod of the "
                        "cluster can reach port %d" % (ps_labels, PS_PORT))
        return
    where = "NetworkPolicy %s" % ", ".join(p["metadata"]["name"] for p in policies)

    def admitted(port, labels):
        return admits(rules, port, ps_container, JOB_NAMESPACE, labels)

    for rule in rules:
        if not rule_covers(rule, PS_PORT, ps_container):
            continue
        if not rule.get("from"):
            problems.append("%s: a rule admits everyone to port %d (%s); expected only the "
                            "job's pods" % (where, PS_PORT, rule))
            continue
        for peer in rule["from"]:
            if set(peer) != {"podSelector"}:
                problems.append("%s: port %d admits %s; expected only pods of this namespace "
                                "(a podSelector without namespaceSelector or ipBlock)"
                                % (where, PS_PORT, peer))
            elif any(selects(peer["podSelector"], stranger) for stranger in STRANGER_LABELS):
                problems.append("%s: port %d admits pods selected by %s, which selects pods "
                                "that are not the job's (e.g. labels %s)"
                                % (where, PS_PORT, peer["podSelector"],
                                   [x for x in STRANGER_LABELS
                                    if selects(peer["podSelector"], x)][0]))
    if not admitted(PS_PORT, worker_labels):
        problems.append("%s: the worker pods (labels %s) are not admitted to port %d"
                        % (where, worker_labels, PS_PORT))
    if not admitted(PS_PORT, ps_labels):
        problems.append("%s: the PS pods (labels %s) are not admitted to port %d "
                        "(mobilenet-ctl run in a PS pod asks every PS)"
                        % (where, ps_labels, PS_PORT))
    if not any(rule_covers(r, health_port, ps_container) and not r.get("from")
               for r in rules):
        problems.append("%s: the health port %d is not open to all; the kubelet's probes "
                        "come from the node" % (where, health_port))
    if metrics_port is not None:
        check_metrics_peers(rules, metrics_port, ps_container, where, problems)


def check_worker_network_policy(docs, worker_labels, worker_container, metrics_port,
                                problems):
    """A NetworkPolicy selects the worker pods and admits only Prometheus, and only to
    the metrics port (a worker listens on nothing else)."""
    policies, rules = ingress_rules(docs, worker_labels)
    if not policies:
        problems.append("no NetworkPolicy selects the worker pods (labels %s): every pod of "
                        "the cluster can reach their metrics port" % worker_labels)
        return
    where = "NetworkPolicy %s" % ", ".join(p["metadata"]["name"] for p in policies)
    for port in (PS_PORT, 8080):
        if any(rule_covers(rule, port, worker_container) for rule in rules):
            problems.append("%s: admits connections to port %d of the workers; expected only "
                            "to the metrics port %d (they listen on nothing else)"
                            % (where, port, metrics_port))
    check_metrics_peers(rules, metrics_port, worker_container, where, problems)


# ---------------------------------------------------------------------------------------
# The checks.

def check_manifests(docs):
    """Every problem of the rendered manifests `docs`, as messages (empty: all good)."""
    problems = []
    service = find(docs, "Service", "ps")
    statefulset = find(docs, "StatefulSet", "ps")
    job = find(docs, "Job", "worker")
    for kind, name, doc in (("Service", "ps", service), ("StatefulSet", "ps", statefulset),
                            ("Job", "worker", job)):
        if doc is None:
            kinds = sorted("%s/%s" % (d.get("kind"), d.get("metadata", {}).get("name"))
                           for d in docs)
            problems.append("no %s named %r among the rendered objects %s" % (kind, name, kinds))
    if problems:
        return problems

    # The headless Service and the StatefulSet behind it.
    service_spec = service.get("spec", {})
    if service_spec.get("clusterIP") != "None":
        problems.append("Service ps: clusterIP is %s; a headless Service (clusterIP: None) is "
                        "what gives the pods the names ps-<i>.ps"
                        % service_spec.get("clusterIP", "unset"))
    grpc_ports = [p for p in service_spec.get("ports", []) if p.get("name") == "grpc"]
    if not grpc_ports or grpc_ports[0].get("port") != PS_PORT:
        problems.append("Service ps: no port %d named grpc (ports: %s)"
                        % (PS_PORT, service_spec.get("ports")))
    ss_spec = statefulset.get("spec", {})
    if ss_spec.get("serviceName") != "ps":
        problems.append("StatefulSet ps: serviceName is %r; expected 'ps' (the headless "
                        "Service that names its pods)" % ss_spec.get("serviceName"))
    pod_labels = ss_spec.get("template", {}).get("metadata", {}).get("labels", {})
    selector = service_spec.get("selector", {})
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problems.append("Service ps: selector %s does not select the StatefulSet's pods "
                        "(labels %s)" % (selector, pod_labels))
    num_ps = ss_spec.get("replicas")
    if not isinstance(num_ps, int) or num_ps < 1:
        problems.append("StatefulSet ps: replicas is %r; expected a positive number" % num_ps)
        return problems

    # The Indexed Job.
    job_spec = job.get("spec", {})
    if job_spec.get("completionMode") != "Indexed":
        problems.append("Job worker: completionMode is %s; expected Indexed (the completion "
                        "index is the worker's task index)"
                        % job_spec.get("completionMode", "unset"))
    num_workers = job_spec.get("completions")
    if job_spec.get("parallelism") != num_workers:
        problems.append("Job worker: parallelism %r differs from completions %r; every worker "
                        "must run at once (the chief waits for the others)"
                        % (job_spec.get("parallelism"), num_workers))
    job_pod = job_spec.get("template", {}).get("spec", {})
    restart = job_pod.get("restartPolicy")
    backoff = job_spec.get("backoffLimit", 6)
    if restart not in ("OnFailure", "Never") or backoff < 1:
        problems.append("Job worker: restartPolicy %r, backoffLimit %r: a crashed worker "
                        "would not be restarted" % (restart, backoff))

    # The containers and what each process is told.
    ps_pod = ss_spec.get("template", {}).get("spec", {})
    ps_container = container_running(ps_pod, "mobilenet-ps")
    worker_container = container_running(job_pod, "mobilenet-worker")
    if ps_container is None:
        problems.append("StatefulSet ps: no container runs mobilenet-ps")
    if worker_container is None:
        problems.append("Job worker: no container runs mobilenet-worker")
    if ps_container is None or worker_container is None:
        return problems
    ps_where, worker_where = "StatefulSet ps", "Job worker"
    ps_flags, ps_env = process_flags(docs, ps_container, ps_where, problems)
    worker_flags, worker_env = process_flags(docs, worker_container, worker_where, problems)
    ps_cluster = cluster_of(ps_flags, ps_env, ps_where, problems)
    worker_cluster = cluster_of(worker_flags, worker_env, worker_where, problems)

    expected_ps = ["ps-%d.ps:%d" % (i, PS_PORT) for i in range(num_ps)]
    for where, cluster in ((ps_where, ps_cluster), (worker_where, worker_cluster)):
        if cluster["ps"] != expected_ps:
            problems.append("%s: the PS list is %s; with StatefulSet ps at %d replicas it must "
                            "be %s (every PS, in task order)"
                            % (where, cluster["ps"], num_ps, expected_ps))
        workers = cluster["worker"] or []
        if len(workers) != num_workers:
            problems.append("%s: the worker list %s has length %d but Job worker has "
                            "completions %r" % (where, workers, len(workers), num_workers))
        if len(set(workers)) != len(workers) or set(workers) & set(expected_ps):
            problems.append("%s: the worker list %s repeats an address (the binaries refuse "
                            "that)" % (where, workers))
    if ps_cluster["ps"] != worker_cluster["ps"] or \
            ps_cluster["worker"] != worker_cluster["worker"]:
        problems.append("the PS and the workers see different clusters: PS %s, workers %s"
                        % (ps_cluster, worker_cluster))

    # Job name and task index from the pod.
    for where, cluster, job_name, field in (
            (ps_where, ps_cluster, "ps", PS_INDEX_FIELD),
            (worker_where, worker_cluster, "worker", WORKER_INDEX_FIELD)):
        if cluster["job_name"] != job_name:
            problems.append("%s: job_name is %r; expected %r" % (where, cluster["job_name"],
                                                                job_name))
        index = cluster["task_index"]
        from_pod = isinstance(index, FieldRef) and index.path == field
        if job_name == "worker" and index == "$(%s)" % WORKER_INDEX_ENV:
            from_pod = True
        if not from_pod:
            problems.append("%s: task_index is %r; it must come from the pod (%s)"
                            % (where, index, field))

    # The PS's port, probes, checkpoints and shutdown.
    ports = {p.get("name"): p.get("containerPort") for p in ps_container.get("ports", [])}
    if ports.get("grpc") != PS_PORT:
        problems.append("%s: no containerPort %d named grpc (ports %s)" % (ps_where, PS_PORT,
                                                                           ports))
    if ps_flags.get("exit_after_training") != "false":
        problems.append("%s: --exit_after_training is %r; expected false (a StatefulSet "
                        "restarts a server that exits)" % (ps_where,
                                                            ps_flags.get("exit_after_training")))
    if ps_flags.get("bind_address") != "0.0.0.0:%d" % PS_PORT:
        problems.append("%s: --bind_address is %r; expected 0.0.0.0:%d (a PS listens only "
                        "where told)" % (ps_where, ps_flags.get("bind_address"), PS_PORT))
    health_port = check_health_port(ps_container, ps_flags, ps_where, problems)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in worker_container:
            problems.append("%s: has a %s, but workers listen on nothing but their metrics "
                            "port" % (worker_where, probe))
    grace = ps_pod.get("terminationGracePeriodSeconds", 30)
    if grace < 30:
        problems.append("%s: terminationGracePeriodSeconds %s leaves too little time for the "
                        "final checkpoint on SIGTERM (expected >= 30)" % (ps_where, grace))
    templates = {t.get("metadata", {}).get("name"): t
                 for t in ss_spec.get("volumeClaimTemplates", [])}
    if not templates:
        problems.append("%s: no volumeClaimTemplates (a PVC per PS for its checkpoints)"
                        % ps_where)
    checkpoint_dir = ps_flags.get("checkpoint_dir") or ""
    mounted = [m for m in ps_container.get("volumeMounts", []) if m.get("name") in templates
               and (checkpoint_dir + "/").startswith(m.get("mountPath", "").rstrip("/") + "/")]
    if templates and not mounted:
        problems.append("%s: --checkpoint_dir %r is not on a volume of volumeClaimTemplates "
                        "%s (mounts %s)" % (ps_where, checkpoint_dir, sorted(templates),
                                            ps_container.get("volumeMounts")))
    for name, template in templates.items():
        if "storage" not in template.get("spec", {}).get("resources", {}).get("requests", {}):
            problems.append("%s: volumeClaimTemplate %s requests no storage" % (ps_where, name))

    # Transport security: mutual TLS from the Secrets, and who may connect at all.
    for where, role, pod, container, flags, field in (
            (ps_where, "ps", ps_pod, ps_container, ps_flags, PS_INDEX_FIELD),
            (worker_where, "worker", job_pod, worker_container, worker_flags,
             WORKER_INDEX_FIELD)):
        check_tls(role, pod, container, flags, field, where, problems)
    # Metrics: each pod's port, flag and annotations, and who may scrape.
    worker_labels = job_spec.get("template", {}).get("metadata", {}).get("labels", {})
    ps_metrics_port = check_metrics(ss_spec.get("template", {}), ps_container, ps_flags,
                                    ps_where, problems)
    worker_metrics_port = check_metrics(job_spec.get("template", {}), worker_container,
                                        worker_flags, worker_where, problems)
    if health_port is not None:
        check_network_policy(docs, pod_labels, worker_labels, ps_container, health_port,
                             ps_metrics_port, problems)
    if worker_metrics_port is not None:
        check_worker_network_policy(docs, worker_labels, worker_container,
                                    worker_metrics_port, problems)

    # Resources, image, model flags.
    check_resources(ps_container, ps_where, problems)
    check_resources(worker_container, worker_where, problems)
    if ps_container.get("image") != worker_container.get("image"):
        problems.append("the PS run image %r, the workers %r" % (ps_container.get("image"),
                                                                 worker_container.get("image")))
    for flag in SHARED_FLAGS:
        ps_value = ps_flags.get(flag, "(default)")
        worker_value = worker_flags.get(flag, "(default)")
        if ps_value != worker_value:
            problems.append("--%s is %s on the PS but %s on the workers; model, optimizer and "
                            "schedule flags must be equal" % (flag, ps_value, worker_value))
    threads = worker_flags.get("threads")
    cpu_limit = worker_container.get("resources", {}).get("limits", {}).get("cpu")
    if threads and cpu_limit and re.fullmatch(r"[0-9]+", threads) and \
            int(threads) > quantity(cpu_limit):
        problems.append("%s: --threads=%s is more than the CPU limit %s"
                        % (worker_where, threads, cpu_limit))
    return problems


# ---------------------------------------------------------------------------------------
# The Prometheus scrape jobs (prometheus-scrape.yml) against the rendered pods: what
# Prometheus' pod discovery would find and what its relabelling would keep.

def meta_name(name):
    """A Kubernetes label or annotation name as Prometheus spells it in a meta label."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovered(template, pod_name, phase, ip):
    """The targets kubernetes_sd_configs (role pod) discovers for a pod of `template` in
    JOB_NAMESPACE: one per declared container port, with the meta labels Prometheus
    documents for them."""
    metadata = template.get("metadata", {})
    pod = {"__meta_kubernetes_namespace": JOB_NAMESPACE["kubernetes.io/metadata.name"],
           "__meta_kubernetes_pod_name": pod_name, "__meta_kubernetes_pod_ip": ip,
           "__meta_kubernetes_pod_phase": phase}
    for kind in ("label", "annotation"):
        for key, value in (metadata.get(kind + "s") or {}).items():
            pod["__meta_kubernetes_pod_%s_%s" % (kind, meta_name(key))] = str(value)
            pod["__meta_kubernetes_pod_%spresent_%s" % (kind, meta_name(key))] = "true"
    targets = []
    for container in template.get("spec", {}).get("containers", []):
        for port in container.get("ports") or [{}]:
            target = dict(pod, __meta_kubernetes_pod_container_name=container.get("name", ""))
            if port:
                target.update(__address__="%s:%d" % (ip, port["containerPort"]),
                              __meta_kubernetes_pod_container_port_name=port.get("name", ""),
                              __meta_kubernetes_pod_container_port_number=str(
                                  port["containerPort"]),
                              __meta_kubernetes_pod_container_port_protocol=port.get(
                                  "protocol", "TCP"))
            else:
                target["__address__"] = ip
            targets.append(target)
    return targets


def relabel(labels, configs, where):
    """`labels` after Prometheus' relabel_configs (actions keep, drop, replace and
    labelmap; regular expressions anchored at both ends); None when dropped."""
    labels = dict(labels)
    for config in configs:
        action = config.get("action", "replace")
        regex = re.compile(str(config.get("regex", "(.*)")))
        value = config.get("separator", ";").join(labels.get(name, "")
                                                  for name in config.get("source_labels", []))
        match = regex.fullmatch(value)

        def fill_in(template, match):
            return re.sub(r"\$\{?(\w+)\}?",
                          lambda m: match.group(int(m.group(1)) if m.group(1).isdigit()
                                                else m.group(1)) or "", template)
        if (action == "keep" and not match) or (action == "drop" and match):
            return None
        if action == "replace" and match:
            result = fill_in(str(config.get("replacement", "$1")), match)
            if result:
                labels[config["target_label"]] = result
            else:
                labels.pop(config["target_label"], None)
        elif action == "labelmap":
            for name, label_value in list(labels.items()):
                name_match = regex.fullmatch(name)
                if name_match:
                    labels[fill_in(str(config.get("replacement", "$1")), name_match)] = \
                        label_value
        elif action not in ("keep", "drop", "replace"):
            raise Failure("%s: relabel action %r is not simulated here" % (where, action))
    return labels


def scrape_targets(config, template, pod_name, phase, ip):
    """{job: [target labels]} that `config`'s scrape jobs make of a pod of `template`:
    job, instance, address and path, the other labels, duplicates merged (as Prometheus
    does)."""
    found = {}
    for job in config.get("scrape_configs", []):
        where = "prometheus-scrape.yml job %s" % job.get("job_name")
        results = []
        for target in discovered(template, pod_name, phase, ip):
            labels = relabel(target, job.get("relabel_configs", []), where)
            if labels is None:
                continue
            labels.setdefault("job", job["job_name"])
            labels.setdefault("instance", labels["__address__"])
            labels.setdefault("__metrics_path__", job.get("metrics_path", "/metrics"))
            kept = {k: v for k, v in labels.items()
                    if not k.startswith("__") or k in ("__address__", "__metrics_path__")}
            if kept not in results:
                results.append(kept)
        if results:
            found[job["job_name"]] = results
    return found


def check_scrape_config(docs, config):
    """Every running PS and worker pod becomes exactly one target of its scrape job
    (SCRAPE_JOBS), at <pod IP>:<its metrics port> and /metrics, named by the pod; a
    finished worker pod, or a pod of another application, becomes none."""
    problems = []
    ip = "10.1.2.3"
    for kind, name, pod_name in (("StatefulSet", "ps", "ps-0"),
                                 ("Job", "worker", "worker-0-x7k2p")):
        template = find(docs, kind, name)["spec"]["template"]
        labels = template.get("metadata", {}).get("labels", {})
        component = labels.get("app.kubernetes.io/component")
        job = SCRAPE_JOBS.get(component)
        ports = {p.get("name"): p.get("containerPort")
                 for c in template.get("spec", {}).get("containers", [])
                 for p in c.get("ports") or []}
        where = "%s %s (pod %s)" % (kind, name, pod_name)
        found = scrape_targets(config, template, pod_name, "Running", ip)
        expected = {job: [{"job": job, "instance": pod_name, "__address__":
                           "%s:%s" % (ip, ports.get("metrics")),
                           "__metrics_path__": METRICS_PATH}]}
        simplified = {j: [{k: t.get(k) for k in ("job", "instance", "__address__",
                                                  "__metrics_path__")} for t in targets]
                      for j, targets in found.items()}
        if job is None or simplified != expected:
            problems.append("%s: prometheus-scrape.yml makes the targets %s of it; expected "
                            "%s (one, of its metrics port)" % (where, found, expected))
        if kind == "Job":
            finished = scrape_targets(config, template, pod_name, "Succeeded", ip)
            if finished:
                problems.append("%s: prometheus-scrape.yml still scrapes it once it has "
                                "Succeeded: %s" % (where, finished))
        stranger = copy.deepcopy(template)
        stranger["metadata"]["labels"] = {"app.kubernetes.io/name": "some-other-app",
                                          "app.kubernetes.io/component": component}
        others = scrape_targets(config, stranger, "other-0", "Running", ip)
        if others:
            problems.append("prometheus-scrape.yml scrapes an annotated pod of another "
                            "application (labels %s): %s"
                            % (stranger["metadata"]["labels"], others))
    return problems


# ---------------------------------------------------------------------------------------
# Rendering.

def find_kubectl(explicit):
    if explicit:
        return explicit
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    found = shutil.which("kubectl")
    if found:
        return found
    for candidate in ("/usr/bin/kubectl", "/usr/local/bin/kubectl"):  # PATH may be short
        if os.access(candidate, os.X_OK):
            return candidate
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Failure("kubectl not found; install Debian's kubernetes-client "
                      "(apt-get install kubernetes-client) or pass --kubectl")
    print("kubectl not found: installing Debian's kubernetes-client")
    command = ["apt-get", "install", "-y", "-q", "kubernetes-client"]
    if subprocess.call(command) != 0:
        subprocess.call(["apt-get", "update", "-q"])
        if subprocess.call(command) != 0:
            raise Failure("kubectl not found and `apt-get install kubernetes-client` failed")
    return shutil.which("kubectl") or "/usr/bin/kubectl"


def kubectl_version(kubectl):
    """'v1.32.4' or the like, as `kubectl version --client` prints it."""
    result = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    match = re.search(r'(?:GitVersion:"|Client Version: )(v[0-9][^"\s]*)', result.stdout)
    return match.group(1) if match else "unknown version"



def render(kubectl, directory):
    """The objects `kubectl kustomize directory` renders (Failure with its stderr)."""
    result = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure("`%s kustomize %s` failed (exit %d):\n%s"
                      % (kubectl, directory, result.returncode, result.stderr.strip()))
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def without_hash_suffixes(docs):
    """`docs` as text with the ConfigMap generator's name hashes removed (they differ
    between kustomize versions)."""
    text = yaml.safe_dump_all(sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"])),
                              sort_keys=True)
    return re.sub(r"\b(mobilenet-[a-z]+)-[a-z0-9]{10}\b", r"\1", text)


def copy_of_manifests(parent):
    """A copy of deploy/k8s in parent/k8s, with deploy/make_certs.sh beside it (for
    make_cert_secret.sh)."""
    target = os.path.join(parent, "k8s")
    shutil.copytree(K8S_DIR, target)
    shutil.copy(os.path.join(SOURCE_DIR, "deploy", "make_certs.sh"), parent)
    return target


def old_kubectl(explicit, cache_dir):
    """Debian 12's kubectl 1.20, from `explicit` or extracted (not installed) from the
    kubernetes-client package into `cache_dir`; None (with the reason printed) when it
    cannot be had."""
    if explicit:
        return explicit
    binary = os.path.join(cache_dir, "root", "usr", "bin", "kubectl")
    if os.path.exists(binary):
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        print("note: no apt-get/dpkg to fetch Debian's kubectl 1.20; not checked with it")
        return None
    os.makedirs(cache_dir, exist_ok=True)
    result = subprocess.run(["apt-get", "download", "-q", "kubernetes-client"], cwd=cache_dir,
                            capture_output=True, text=True)
    packages = glob.glob(os.path.join(cache_dir, "kubernetes-client_*.deb"))
    if result.returncode != 0 or not packages:
        print("note: `apt-get download kubernetes-client` failed (%s); not checked with "
              "Debian's kubectl 1.20" % result.stderr.strip().splitlines()[-1:])
        return None
    subprocess.run(["dpkg", "-x", packages[0], os.path.join(cache_dir, "root")], check=True)
    return binary


# ---------------------------------------------------------------------------------------
# The test.

def expect_problem(name, docs, mutate, needle):
    """The check must reject `docs` changed by `mutate` with a message containing
    `needle`."""
    changed = copy.deepcopy(docs)
    mutate(changed)
    problems = check_manifests(changed)
    if not any(needle in p for p in problems):
        raise Failure("the check did not catch %s: expected a message containing %r, got %s"
                      % (name, needle, problems))
    print("ok: catches %s: %s" % (name, problems[0]))


def set_arg(container, flag, value):
    args = container["args"]
    for i, arg in enumerate(args):
        if arg.startswith("--%s=" % flag):
            if value is None:
                del args[i]
            else:
                args[i] = "--%s=%s" % (flag, value)
            return
    raise AssertionError("no --%s in %s" % (flag, args))


def negative_checks(docs):
    def ps(d):
        return find(d, "StatefulSet", "ps")

    def ps_container(d):
        return ps(d)["spec"]["template"]["spec"]["containers"][0]

    def job(d):
        return find(d, "Job", "worker")

    def worker_container(d):
        return job(d)["spec"]["template"]["spec"]["containers"][0]

    def ps_pod(d):
        return ps(d)["spec"]["template"]["spec"]

    def worker_pod(d):
        return job(d)["spec"]["template"]["spec"]

    def tls_mount(container):
        return [m for m in container["volumeMounts"] if m["mountPath"] == TLS_MOUNT][0]

    def tls_volume(pod):
        return [v for v in pod["volumes"] if "secret" in v][0]

    def policy(d, name="ps"):
        return find(d, "NetworkPolicy", name)

    def annotations(d, kind, name):
        return find(d, kind, name)["spec"]["template"]["metadata"]["annotations"]

    def cluster_map(d):
        for doc in d:
            if doc["kind"] == "ConfigMap" and "MOBILENET_CLUSTER" in doc.get("data", {}):
                return doc["data"]
        raise AssertionError("no ConfigMap with MOBILENET_CLUSTER")

    def edit_cluster(d, edit):
        data = cluster_map(d)
        cluster = json.loads(data["MOBILENET_CLUSTER"])
        edit(cluster["cluster"])
        data["MOBILENET_CLUSTER"] = json.dumps(cluster)

    cases = [
        ("a PS count that the PS list does not follow",
         lambda d: ps(d)["spec"].update(replicas=3), "at 3 replicas"),
        ("parallelism unlike completions",
         lambda d: job(d)["spec"].update(parallelism=1), "parallelism 1 differs"),
        ("a worker count that the worker list does not follow",
         lambda d: job(d)["spec"].update(completions=3, parallelism=3), "completions 3"),
        ("PS listed out of order",
         lambda d: edit_cluster(d, lambda c: c["ps"].reverse()), "in task order"),
        ("a short worker list",
         lambda d: edit_cluster(d, lambda c: c["worker"].pop()), "has length 1"),
        ("a worker without --alpha",
         lambda d: set_arg(worker_container(d), "alpha", None), "--alpha"),
        ("a different learning rate on the workers",
         lambda d: set_arg(worker_container(d), "learning_rate", "0.1"), "--learning_rate"),
        ("a PS task index written down",
         lambda d: set_arg(ps_container(d), "task_index", "0"), "task_index"),
        ("a worker with job_name ps",
         lambda d: set_arg(worker_container(d), "job_name", "ps"), "job_name"),
        ("a TCP readiness probe",
         lambda d: ps_container(d).update(readinessProbe={"tcpSocket": {"port": 2222}}),
         "readinessProbe"),
        ("a probe on a worker",
         lambda d: worker_container(d).update(livenessProbe={"grpc": {"port": 2222}}),
         "workers listen on nothing"),
        ("a worker without limits",
         lambda d: worker_container(d)["resources"].pop("limits"), "limits"),
        ("no PVC template",
         lambda d: ps(d)["spec"].pop("volumeClaimTemplates"), "volumeClaimTemplates"),
        ("a Service with a cluster IP",
         lambda d: find(d, "Service", "ps")["spec"].pop("clusterIP"), "headless"),
        ("an undefined $(VAR)",
         lambda d: set_arg(ps_container(d), "alpha", "$(NO_SUCH_VARIABLE)"), "NO_SUCH_VARIABLE"),
        ("a Job that is not Indexed",
         lambda d: job(d)["spec"].pop("completionMode"), "completionMode"),
        ("a PS without a certificate",
         lambda d: set_arg(ps_container(d), "tls_cert_file", None), "--tls_cert_file"),
        ("a worker without the CA",
         lambda d: set_arg(worker_container(d), "tls_ca_file", None), "--tls_ca_file"),
        ("a worker presenting a PS's certificate",
         lambda d: set_arg(worker_container(d), "tls_cert_file",
                           "/etc/mobilenet/tls/ps-$(WORKER_INDEX).crt"), "worker-<index>.crt"),
        ("a certificate index written down",
         lambda d: set_arg(ps_container(d), "tls_key_file", "/etc/mobilenet/tls/ps-0.key"),
         "index from the pod"),
        ("a PS with --insecure",
         lambda d: ps_container(d)["args"].append("--insecure"), "--insecure"),
        ("the Secret mounted writable",
         lambda d: tls_mount(worker_container(d)).pop("readOnly"), "readOnly"),
        ("the Secret mounted by subPath",
         lambda d: tls_mount(ps_container(d)).update(subPath="ps-0.crt"), "subPath"),
        ("another role's Secret",
         lambda d: tls_volume(worker_pod(d))["secret"].update(secretName="mobilenet-tls-ps"),
         "mobilenet-tls-worker"),
        ("keys readable by others",
         lambda d: tls_volume(ps_pod(d))["secret"].update(defaultMode=0o644), "readable by"),
        ("keys the non-root worker cannot read",
         lambda d: worker_pod(d)["securityContext"].pop("fsGroup"), "fsGroup"),
        ("probes on the TLS port",
         lambda d: ps_container(d)["livenessProbe"]["grpc"].update(port=PS_PORT), "health port"),
        ("no --health_address",
         lambda d: set_arg(ps_container(d), "health_address", None), "--health_address"),
        ("no NetworkPolicy",
         lambda d: d.remove(policy(d)), "no NetworkPolicy"),
        ("a NetworkPolicy open to everyone on the PS port",
         lambda d: policy(d)["spec"]["ingress"][0].pop("from"), "admits everyone"),
        ("a NetworkPolicy admitting other namespaces",
         lambda d: policy(d)["spec"]["ingress"][0]["from"][0].update(namespaceSelector={}),
         "namespaceSelector"),
        ("a NetworkPolicy admitting any pod",
         lambda d: policy(d)["spec"]["ingress"][0]["from"][0].update(podSelector={}),
         "not the job's"),
        ("a NetworkPolicy without the workers",
         lambda d: policy(d)["spec"]["ingress"][0]["from"][0]["podSelector"][
             "matchExpressions"][1].update(values=["parameter-server"]),
         "worker pods"),
        ("a NetworkPolicy closing the health port",
         lambda d: policy(d)["spec"]["ingress"].pop(1), "health port"),
        ("a PS without --metrics_address",
         lambda d: set_arg(ps_container(d), "metrics_address", None), "--metrics_address"),
        ("metrics on loopback only",
         lambda d: set_arg(worker_container(d), "metrics_address", "127.0.0.1:9100"),
         "expected 0.0.0.0:<port>"),
        ("a worker's --metrics_address unlike its metrics port",
         lambda d: set_arg(worker_container(d), "metrics_address", "0.0.0.0:9200"),
         "named metrics"),
        ("a worker without the metrics containerPort",
         lambda d: worker_container(d).pop("ports"), "named metrics"),
        ("a PS annotation naming another port",
         lambda d: annotations(d, "StatefulSet", "ps").update({"prometheus.io/port": "2222"}),
         "prometheus.io/port"),
        ("a worker pod not to be scraped",
         lambda d: annotations(d, "Job", "worker").update({"prometheus.io/scrape": "false"}),
         "prometheus.io/scrape"),
        ("a PS pod without the path annotation",
         lambda d: annotations(d, "StatefulSet", "ps").pop("prometheus.io/path"),
         "prometheus.io/path"),
        ("a NetworkPolicy closing the PS metrics port",
         lambda d: policy(d)["spec"]["ingress"].pop(2), "not admitted to the metrics port"),
        ("a NetworkPolicy admitting every namespace to the PS metrics port",
         lambda d: policy(d)["spec"]["ingress"][2]["from"][0].update(namespaceSelector={}),
         "to the metrics port"),
        ("a NetworkPolicy admitting any pod of the namespace monitoring",
         lambda d: policy(d, "worker")["spec"]["ingress"][0]["from"][0].pop("podSelector"),
         "grafana"),
        ("no NetworkPolicy for the workers",
         lambda d: d.remove(policy(d, "worker")), "no NetworkPolicy selects the worker pods"),
        ("a worker NetworkPolicy open on every port",
         lambda d: policy(d, "worker")["spec"]["ingress"][0].pop("ports"),
         "port 2222 of the workers"),
    ]
    for name, mutate, needle in cases:
        expect_problem(name, docs, mutate, needle)


def negative_scrape_checks(docs, config):
    """check_scrape_config must catch pods and scrape jobs that do not fit together."""
    def ps_template(d):
        return find(d, "StatefulSet", "ps")["spec"]["template"]

    def rename_metrics_port(d):
        for port in ps_template(d)["spec"]["containers"][0]["ports"]:
            if port["name"] == "metrics":
                port["name"] = "prom"

    def drop_rule(c, job, source_label):
        jobs = {j["job_name"]: j for j in c["scrape_configs"]}
        rules = jobs[job]["relabel_configs"]
        rules[:] = [r for r in rules if source_label not in r.get("source_labels", [])]

    cases = [
        ("a PS metrics port of another name", rename_metrics_port, None, "expected"),
        ("a PS pod without the scrape annotation",
         lambda d: ps_template(d)["metadata"]["annotations"].pop(SCRAPE_ANNOTATION), None,
         "expected"),
        ("a worker job that scrapes finished pods", None,
         lambda c: drop_rule(c, "mobilenet-worker", "__meta_kubernetes_pod_phase"),
         "Succeeded"),
        ("a PS job that ignores the pods' labels", None,
         lambda c: drop_rule(c, "mobilenet-ps",
                             "__meta_kubernetes_pod_label_app_kubernetes_io_component"),
         "expected"),
    ]
    for name, mutate_docs, mutate_config, needle in cases:
        changed_docs, changed_config = copy.deepcopy(docs), copy.deepcopy(config)
        if mutate_docs:
            mutate_docs(changed_docs)
        if mutate_config:
            mutate_config(changed_config)
        problems = check_scrape_config(changed_docs, changed_config)
        if not any(needle in p for p in problems):
            raise Failure("the scrape check did not catch %s: expected a message containing "
                          "%r, got %s" % (name, needle, problems))
        print("ok: catches %s: %s" % (name, problems[0][:300]))


def check_cert_secrets(docs, k8s_dir, certs_dir):
    """Runs make_cert_secret.sh of `k8s_dir` (which makes the certificates in `certs_dir`
    for its cluster-size.yaml) and checks its Secrets against the rendered `docs`: each
    holds every file the flags of its role name, for every task index; each certificate
    names its task, is signed by the CA and matches its key; no CA key, no key of another
    role."""
    script = os.path.join(k8s_dir, "make_cert_secret.sh")
    result = subprocess.run([script, certs_dir], capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure("%s %s failed (exit %d):\n%s" % (script, certs_dir, result.returncode,
                                                      result.stderr.strip()))
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)
               if d and d.get("kind") == "Secret"}
    num_ps, num_workers = counts(docs)
    with tempfile.TemporaryDirectory(prefix="k8s_secret_") as temp:
        for kind, name, binary, role, count in (
                ("StatefulSet", "ps", "mobilenet-ps", "ps", num_ps),
                ("Job", "worker", "mobilenet-worker", "worker", num_workers)):
            container = container_running(find(docs, kind, name)["spec"]["template"]["spec"],
                                          binary)
            flags, _ = process_flags(docs, container, name, [])
            secret = secrets.get(ROLE_SECRETS[role])
            if secret is None:
                raise Failure("make_cert_secret.sh printed no Secret %s (it printed %s)"
                              % (ROLE_SECRETS[role], sorted(secrets)))
            data = secret.get("data", {})
            needed = set()
            for i in range(count):
                for flag in TLS_FLAGS:
                    value = flags[flag]
                    needed.add(os.path.basename(value.render(i) if isinstance(value, FromPod)
                                                else value))
            if needed - set(data):
                raise Failure("Secret %s lacks %s, which %s %s names (it holds %s)"
                              % (ROLE_SECRETS[role], sorted(needed - set(data)), kind, name,
                                 sorted(data)))
            allowed_keys = {"%s-%d.key" % (role, i) for i in range(count)}
            if role == "ps":
                allowed_keys.add("monitor.key")  # mobilenet-ctl in a PS pod
            stray = sorted(k for k in data if k.endswith(".key") and k not in allowed_keys)
            if stray:
                raise Failure("Secret %s holds keys it must not: %s" % (ROLE_SECRETS[role],
                                                                        stray))
            files = {}
            for key, value in data.items():
                files[key] = os.path.join(temp, "%s-%s" % (role, key))
                with open(files[key], "wb") as f:
                    f.write(base64.b64decode(value))
            for key in sorted(k for k in data if k.endswith(".crt") and k != "ca.crt"):
                stem = key[:-len(".crt")]
                text = openssl("x509", "-in", files[key], "-noout", "-text")
                if "DNS:%s" % stem not in re.sub(r"\s", "", text):
                    raise Failure("Secret %s: %s does not carry the DNS name %s"
                                  % (ROLE_SECRETS[role], key, stem))
                openssl("verify", "-CAfile", files["ca.crt"], files[key])
                if openssl("x509", "-in", files[key], "-noout", "-pubkey") != \
                        openssl("pkey", "-in", files[stem + ".key"], "-pubout"):
                    raise Failure("Secret %s: %s.key is not the key of %s"
                                  % (ROLE_SECRETS[role], stem, key))
    return {name: sorted(secret.get("data", {})) for name, secret in secrets.items()}


def openssl(*args):
    result = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure("openssl %s failed: %s" % (" ".join(args), result.stderr.strip()))
    return result.stdout


def check_flags_parse(docs, bin_dir):
    """Runs each binary with the arguments its container gets (pod index 0) and
    --version, which makes it parse every flag and exit: an unknown flag or a bad value
    fails."""
    for kind, name, binary in (("StatefulSet", "ps", "mobilenet-ps"),
                               ("Job", "worker", "mobilenet-worker")):
        container = container_running(find(docs, kind, name)["spec"]["template"]["spec"],
                                      binary)
        problems = []
        env = container_env(docs, container, name, problems)
        env = {k: ("0" if isinstance(v, FieldRef) else v) for k, v in env.items()}
        args = [expand(str(a), env, name, problems)[0] for a in command_line(container)[1:]]
        result = subprocess.run([os.path.join(bin_dir, binary)] + args + ["--version"],
                                capture_output=True, text=True)
        if problems or result.returncode != 0:
            raise Failure("%s does not accept the arguments of %s %s %s: %s"
                          % (binary, kind, name, args, problems or result.stderr.strip()))
    print("ok: mobilenet-ps and mobilenet-worker accept the rendered arguments")


def require_no_problems(what, docs):
    problems = check_manifests(docs)
    if problems:
        raise Failure("%s:\n  %s" % (what, "\n  ".join(problems)))


def counts(docs):
    return (find(docs, "StatefulSet", "ps")["spec"]["replicas"],
            find(docs, "Job", "worker")["spec"]["completions"])


def run(args):
    kubectl = find_kubectl(args.kubectl)
    print("kubectl: %s (%s)" % (kubectl, kubectl_version(kubectl)))
    shipped = render(kubectl, K8S_DIR)
    require_no_problems("the shipped manifests (deploy/k8s)", shipped)
    num_ps, num_workers = counts(shipped)
    print("ok: deploy/k8s renders %d objects, %d PS and %d workers, consistent"
          % (len(shipped), num_ps, num_workers))

    script = os.path.join(K8S_DIR, "set_cluster_size.sh")
    generated = subprocess.run([script, str(num_ps), str(num_workers), "--stdout"],
                               capture_output=True, text=True, check=True).stdout
    with open(os.path.join(K8S_DIR, "cluster-size.yaml")) as f:
        if f.read() != generated:
            raise Failure("deploy/k8s/cluster-size.yaml differs from what `set_cluster_size.sh "
                          "%d %d` writes: run it instead of editing the file"
                          % (num_ps, num_workers))
    print("ok: cluster-size.yaml is what set_cluster_size.sh %d %d writes"
          % (num_ps, num_workers))

    with tempfile.TemporaryDirectory(prefix="k8s_manifests_") as temp:
        resized = copy_of_manifests(os.path.join(temp, "resized"))
        subprocess.run([os.path.join(resized, "set_cluster_size.sh"), "3", "4"], check=True,
                       stdout=subprocess.DEVNULL)
        docs = render(kubectl, resized)
        require_no_problems("the manifests resized to 3 PS and 4 workers", docs)
        if counts(docs) != (3, 4):
            raise Failure("set_cluster_size.sh 3 4 rendered %s PS and workers" % (counts(docs),))
        print("ok: set_cluster_size.sh 3 4 renders 3 PS and 4 workers, consistent")
        held = check_cert_secrets(docs, resized, os.path.join(temp, "certs-3-4"))
        print("ok: make_cert_secret.sh of the resized copy: %s"
              % "; ".join("%s: %d files" % (n, len(f)) for n, f in sorted(held.items())))

        held = check_cert_secrets(shipped, K8S_DIR, os.path.join(temp, "certs"))
        print("ok: make_cert_secret.sh makes what the pods mount: %s"
              % "; ".join("%s: %s" % (n, " ".join(f)) for n, f in sorted(held.items())))

        broken = copy_of_manifests(os.path.join(temp, "broken"))
        size_file = os.path.join(broken, "cluster-size.yaml")
        with open(size_file) as f:
            text = f.read()
        edited = re.sub(r"replicas: \d+", "replicas: %d" % (num_ps + 1), text)
        with open(size_file, "w") as f:
            f.write(edited)
        problems = check_manifests(render(kubectl, broken))
        if not any("replicas" in p for p in problems):
            raise Failure("cluster-size.yaml edited to %d replicas without the PS list "
                          "rendered without a complaint: %s" % (num_ps + 1, problems))
        print("ok: catches cluster-size.yaml edited by hand (replicas %d): %s"
              % (num_ps + 1, problems[0]))

    negative_checks(shipped)

    with open(SCRAPE_CONFIG) as f:
        scrape_config = yaml.safe_load(f)
    problems = check_scrape_config(shipped, scrape_config)
    if problems:
        raise Failure("deploy/k8s/prometheus-scrape.yml and the rendered pods:\n  %s"
                      % "\n  ".join(problems))
    print("ok: prometheus-scrape.yml makes one target of each running PS and worker pod "
          "(jobs %s, their metrics port, /metrics), none of a finished worker or of another "
          "application's pod" % ", ".join(sorted(SCRAPE_JOBS.values())))
    negative_scrape_checks(shipped, scrape_config)

    if args.bin_dir and os.path.exists(os.path.join(args.bin_dir, "mobilenet-ps")):
        check_flags_parse(shipped, args.bin_dir)
    else:
        print("note: no --bin_dir with the binaries; their flags were not tried")

    old = old_kubectl(args.old_kubectl, args.cache_dir)
    if old is not None:
        old_docs = render(old, K8S_DIR)
        if without_hash_suffixes(old_docs) != without_hash_suffixes(shipped):
            raise Failure("%s (%s) renders deploy/k8s differently from %s"
                          % (old, kubectl_version(old), kubectl))
        print("ok: %s (%s) renders the same manifests" % (old, kubectl_version(old)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", help="kubectl to render with (default: found or installed)")
    parser.add_argument("--bin_dir", help="folder of mobilenet-ps and mobilenet-worker, to "
                        "check that they accept the rendered flags")
    parser.add_argument("--old_kubectl", help="Debian 12's kubectl 1.20 (default: fetched)")
    parser.add_argument("--cache_dir",
                        default=os.path.join(tempfile.gettempdir(), "k8s_manifests_kubectl_1.20"),
                        help="where Debian's kubernetes-client package is extracted")
    args = parser.parse_args()
    try:
        run(args)
    except Failure as e:
        print("FAILED: %s" % e)
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
