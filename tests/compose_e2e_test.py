#!/usr/bin/python3
"""End-to-end test of the docker-compose cluster (deploy/docker-compose.yml) on a real
Docker engine, on mutual TLS:

  1. starts dockerd when no engine runs (installing docker.io, docker-compose, debootstrap
     and iptables from Debian when missing: deploy/docker/engine.sh);
  2. builds the base image debian:bookworm-slim from Debian's packages when it is missing
     (deploy/docker/build_base_image.sh), then the trainer image (deploy/Dockerfile) and
     the Prometheus image (`docker-compose build prometheus`: deploy/prometheus/Dockerfile,
     Debian's prometheus package on the same base image);
  3. makes the cluster's certificates with deploy/make_certs.sh (for the compose file's
     PS and workers, into a temporary folder: MOBILENET_CERTS_DIR), brings the compose
     cluster up (2 PS, 2 workers and Prometheus; a short job: small resolution, few epochs)
     on free host ports and follows it through the status RPC *from the host* (this
     build's mobilenet-ctl with the monitor's certificate against the PS ports published on
     127.0.0.1);
  4. monitoring, while the cluster trains, through Prometheus' HTTP API on its port
     published on 127.0.0.1: every target (jobs mobilenet-ps: ps0, ps1; mobilenet-worker:
     worker0, worker1) is up; mobilenet_ps_global_step of each PS rises between two
     queries; rate(mobilenet_ps_pushes_total{result="applied"}[30s]) of each PS and
     rate(mobilenet_worker_steps_total[30s]) of each worker are above 0; the groups and
     rules of deploy/prometheus/rules.yml are loaded (/api/v1/rules); the (classic) UI's
     pages answer, with every script of its graph page. The metrics ports are published
     nowhere (a PS publishes only its gRPC port, a worker nothing), Prometheus only on
     127.0.0.1, and it runs as a user other than root;
  5. transport security: every PS reports "mutual TLS"; mobilenet-ctl status answers
     inside the compose network too (the monitor's certificate from ps0's volume);
     without a certificate, or with one of another CA, no PS answers; each container
     holds, read-only, the CA's certificate and its own certificate and key (a PS also
     the monitor's), the keys mode 0400 of uid 10001, and no other key, the CA's neither;
     the image's mobilenet-ps refuses to listen on 0.0.0.0 without TLS; rotated
     certificates (make_certs.sh --rotate, `up -d certs`) are served within seconds,
     without a restart;
  6. kills worker 1's trainer process with SIGKILL from the host, as a crash looks (not
     `docker kill`, which the engine takes for a manual stop and does not restart), and
     checks that the global step keeps rising and the worker comes back by itself;
  7. `stop`s the cluster and brings it `up` again: the PS restore their checkpoints from
     the named volume, so the global step does not go back, and Prometheus still has the
     samples from before the stop (its named volume);
  8. waits for the end of training: the chief reports its test accuracy, every trainer
     container exits 0 and is not restarted; Prometheus keeps running and reports the
     four targets down (expected once training is over);
  9. tears everything down (`down -v`; nothing of the project may be left: containers,
     volumes, networks), stops the dockerd it started and puts the iptables FORWARD
     policy back, on failure and interruption too. On failure it prints the compose logs.

Usage: compose_e2e_test.py --bin_dir DIR [--source_dir DIR] [--keep]
  --bin_dir     where this build's mobilenet-ctl is (tests/compose_e2e.cmake passes it)
  --source_dir  the repository (default: this file's parent folder)
  --keep        leave the cluster and the engine running (for debugging)
Needs root (it starts dockerd and may install packages) and python3-yaml. Exit 77
(skipped) when not root and no Docker engine answers.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from e2e_common import Failure, check, free_ports

try:
    import yaml
except ImportError:
    print("compose_e2e: FAILED: python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(1)

SKIP = 77
IMAGE = "mobilenet-v1-trainer:latest"
PROMETHEUS_IMAGE = "mobilenet-prometheus:latest"
# The scrape jobs of deploy/prometheus/prometheus-compose.yml and their instances (the
# compose hostnames), each scraped on port 9100 of its container.
SCRAPE_TARGETS = {("mobilenet-ps", "ps0"), ("mobilenet-ps", "ps1"),
                  ("mobilenet-worker", "worker0"), ("mobilenet-worker", "worker1")}
TRAINERS = ("ps0", "ps1", "worker0", "worker1")
# Where the services mount their volume tls-<service> (deploy/docker-compose.yml), and
# the certificates (and keys) each finds there.
TLS_IN_CONTAINER = "/etc/mobilenet/tls"
TLS_FILES = {"ps0": ["ca", "ps-0", "monitor"], "ps1": ["ca", "ps-1", "monitor"],
             "worker0": ["ca", "worker-0"], "worker1": ["ca", "worker-1"]}
# The short job: 2 workers x 4 epochs of their half of Fashion-MNIST at 32x32, 1 thread
# each (a few minutes on 2 cores), checkpoints every 10 s so that stop/up has one to resume;
# the servers keep a weight average, which the chief evaluates beside the weights.
JOB_ENV = {"EPOCHS": "4", "RESOLUTION": "32", "WORKER_THREADS": "1", "EVAL_EVERY_SECS": "0",
           "CHECKPOINT_EVERY_SECS": "10", "WEIGHT_EMA_DECAY": "0.99"}


def log(message):
    print(f"[compose_e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd, *, env=None, capture=False, check_rc=True, timeout=None, quiet=False):
    """Runs cmd; its output goes to ours unless captured (then returned as text)."""
    if not quiet:
        log("$ " + " ".join(cmd))
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.STDOUT if capture else None, text=True,
                            timeout=timeout)
    if check_rc and result.returncode != 0:
        out = result.stdout or ""
        raise Failure(f"{' '.join(cmd)} exited with {result.returncode}"
                      + (f"; its output:\n{out[-4000:]}" if out else ""))
    return result.stdout if capture else result.returncode


def compose_command():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode == 0:
        return ["docker", "compose"]
    raise Failure("neither docker-compose nor `docker compose` is installed")


class Compose:
    def __init__(self, source_dir, project, env):
        self.base = compose_command() + ["-f", os.path.join(source_dir, "deploy",
                                                            "docker-compose.yml"),
                                         "-p", project]
        self.env = env

    def __call__(self, *args, capture=False, check_rc=True, timeout=600, quiet=False):
        return run(self.base + list(args), env=self.env, capture=capture, check_rc=check_rc,
                   timeout=timeout, quiet=quiet)

    def container(self, service):
        cid = self("ps", "-q", service, capture=True, quiet=True).strip()
        check(cid, f"no container for service {service}")
        return cid


def inspect(cid, fmt):
    return run(["docker", "inspect", "-f", fmt, cid], capture=True, quiet=True).strip()


def tls_flags(certs_dir, name):
    """mobilenet-ctl's (or any binary's) flags for the certificate `name` of `certs_dir`."""
    return [f"--tls_cert_file={certs_dir}/{name}.crt", f"--tls_key_file={certs_dir}/{name}.key",
            f"--tls_ca_file={certs_dir}/ca.crt"]


class Status:
    """The cluster's status through the PS ports published on the host, asked with the
    monitor's certificate (or `credentials`: other flags, [] for none)."""

    def __init__(self, ctl, ports, credentials):
        self.cmd = [ctl, "status", "--json", "--timeout_secs=3",
                    "--ps_hosts=" + ",".join(f"127.0.0.1:{p}" for p in ports)] + credentials

    def query(self):
        """(exit code, the status JSON or None)."""
        r = subprocess.run(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        try:
            return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            raise Failure(f"{' '.join(self.cmd)} printed no JSON:\n{r.stdout}{r.stderr}")

    def get(self):
        """The status JSON, or None when no PS answers."""
        code, status = self.query()
        return status if code == 0 else None

    def wait(self, what, predicate, timeout):
        """Polls until predicate(status) holds; returns that status."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            s = self.get()
            if s is not None:
                last = s
                if predicate(s):
                    return s
            time.sleep(2)
        raise Failure(f"timed out after {timeout} s waiting for {what}; last status: "
                      f"{json.dumps(summary(last)) if last else 'no PS answered'}")


def summary(status):
    return status.get("summary", status) if status else {}


def step(status):
    return int(summary(status).get("global_step", 0))


def answering(status):
    return int(summary(status).get("servers_answering", 0))


def served_certificate(port, server_name):
    """SHA-256 of the certificate the TLS server on 127.0.0.1:port presents (asking
    without a client certificate: the handshake does not need one, only calls do)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    except OSError as e:  # ssl.SSLError too
        raise Failure(f"TLS handshake with 127.0.0.1:{port} ({server_name}): {e}")


def file_certificate(path):
    """SHA-256 of the (first) certificate of the PEM file `path`."""
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def cluster_size(compose):
    """(number of PS, number of workers) of the compose file: its services psN, workerN."""
    services = compose("config", "--services", capture=True, quiet=True).split()

    def count(prefix):
        return sum(1 for s in services if s.startswith(prefix) and s[len(prefix):].isdigit())
    return count("ps"), count("worker")


def check_transport_security(compose, status, ctl, ports, certs_dir, work, source):
    """Step 4: the cluster runs on mutual TLS and refuses callers without a certificate of
    its CA; the keys in the containers are the image user's, the CA's key stays out;
    rotation needs no restart."""
    s = status.get()
    check(s is not None, "mobilenet-ctl status with the monitor's certificate failed")
    security = [(p.get("address"), p.get("transport_security"), p.get("insecure"))
                for p in s["parameter_servers"]]
    check(all(p.get("ok") and p.get("transport_security") == "mutual TLS" and
              not p.get("insecure") for p in s["parameter_servers"]),
          f"expected every PS on mutual TLS (and not --insecure): {security}")
    log(f"status with the monitor's certificate: {security}")

    inside = compose("exec", "-T", "ps0", "mobilenet-ctl", "status", "--json",
                     "--ps_hosts=ps0:2222,ps1:2222",
                     *tls_flags(TLS_IN_CONTAINER, "monitor"), capture=True, quiet=True)
    inside_status = json.loads(inside)
    check([p.get("transport_security") for p in inside_status["parameter_servers"]] ==
          ["mutual TLS", "mutual TLS"],
          f"mobilenet-ctl status inside the compose network: {inside.strip()[-2000:]}")
    log("status from inside the compose network (ps0, the volume's monitor certificate): ok")

    foreign = os.path.join(work, "other-ca")
    run(["bash", os.path.join(source, "deploy", "make_certs.sh"), foreign, "1", "1"],
        capture=True, quiet=True)
    for what, credentials in (("without a certificate", []),
                              ("with a certificate of another CA",
                               tls_flags(foreign, "monitor")),
                              ("trusting another CA",
                               tls_flags(certs_dir, "monitor")[:2] +
                               [f"--tls_ca_file={foreign}/ca.crt"])):
        code, refused = Status(ctl, ports, credentials).query()
        answering_servers = answering(refused) if refused else 0
        check(code != 0 and answering_servers == 0,
              f"mobilenet-ctl status {what}: exit {code}, {answering_servers} PS answered")
        errors = [p.get("error", "").split("last error: ")[-1]
                  for p in (refused or {}).get("parameter_servers", [])]
        log(f"status {what}: exit {code}, no PS answers ({errors[0] if errors else ''})")

    for service, names in TLS_FILES.items():
        listing = compose("exec", "-T", service, "sh", "-c",
                          f"cd {TLS_IN_CONTAINER} && stat -c '%n %a %u:%g' *; "
                          f"touch {TLS_IN_CONTAINER}/x 2>/dev/null && echo WRITABLE || true",
                          capture=True, quiet=True)
        check("WRITABLE" not in listing, f"{TLS_IN_CONTAINER} is writable in {service}")
        files = dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)
        expected = {f"{n}.crt": "444 10001:10001" for n in names}
        expected.update({f"{n}.key": "400 10001:10001" for n in names if n != "ca"})
        check(files == expected, f"{service}'s {TLS_IN_CONTAINER} holds {files}; expected "
                                 f"{expected} (its own key only, no CA key)")
    log("each container holds, read-only, only its own key (0400, uid 10001) and ca.crt "
        "(a PS also the monitor's)")
    host_mode = os.stat(os.path.join(certs_dir, "ps-0.key")).st_mode & 0o777
    check(host_mode == 0o600, f"the host's ps-0.key is mode {host_mode:o}, expected 600")

    refused = run(["docker", "run", "--rm", IMAGE, "mobilenet-ps", "--job_name=ps",
                   "--task_index=0", "--ps_hosts=ps0:2222", "--worker_hosts=worker0:2222",
                   "--bind_address=0.0.0.0:2222"], capture=True, check_rc=False, quiet=True)
    check("refusing to listen on 0.0.0.0:2222 without transport security" in refused,
          f"mobilenet-ps on 0.0.0.0 without TLS did not refuse; it printed:\n{refused}")
    log("mobilenet-ps on 0.0.0.0 without TLS or --insecure refuses to start")

    def served():
        return [served_certificate(p, f"ps-{i}") for i, p in enumerate(ports)]

    def in_files():
        return [file_certificate(os.path.join(certs_dir, f"ps-{i}.crt"))
                for i in range(len(ports))]
    original = in_files()
    check(served() == original, "the PS do not serve their certificates ps-<i>.crt")
    services = TRAINERS + ("prometheus",)
    started = {s: inspect(compose.container(s), "{{.State.StartedAt}}") for s in services}
    run(["bash", os.path.join(source, "deploy", "make_certs.sh"), certs_dir,
         *map(str, cluster_size(compose)), "--rotate"], capture=True, quiet=True)
    rotated = in_files()
    check(all(a != b for a, b in zip(original, rotated)), "make_certs.sh --rotate changed nothing")
    compose("up", "-d", "certs")
    deadline = time.time() + 30
    while served() != rotated:
        check(time.time() < deadline, "the PS do not serve the rotated certificates after 30 s")
        time.sleep(1)
    check(started == {s: inspect(compose.container(s), "{{.State.StartedAt}}")
                      for s in services},
          "a container was restarted by the rotation")
    check(status.get() is not None, "mobilenet-ctl status with the rotated monitor certificate")
    log(f"rotation: the PS serve the new certificates {time.time() - deadline + 30:.0f} s "
        "after `up -d certs`, nothing restarted; status answers")


class Prometheus:
    """The compose cluster's Prometheus, asked through its HTTP API on the port published
    on 127.0.0.1 (directly: no proxy from the environment)."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def api(self, path, **params):
        """The "data" of GET /api/v1/<path>?<params>; Failure when it does not answer or
        answers with an error."""
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with self.opener.open(url, timeout=10) as response:
                body = json.load(response)
        except (OSError, ValueError) as e:  # urllib's errors are OSErrors
            raise Failure(f"Prometheus: GET {url}: {e}")
        check(body.get("status") == "success", f"Prometheus: GET {url}: {body}")
        return body["data"]

    def query(self, expr, at=None):
        """{(job, instance): value} of the instant vector `expr`, now or at time `at`."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        check(data.get("resultType") == "vector",
              f"Prometheus: {expr} gave a {data.get('resultType')}, expected a vector")
        return {(r["metric"].get("job"), r["metric"].get("instance")): float(r["value"][1])
                for r in data["result"]}

    def ready(self):
        return self.page("/-/ready")[0] == 200

    def page(self, path):
        """(HTTP status, text) of GET `path`, redirects followed; (None, error) when it
        does not answer."""
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, str(e)
        except OSError as e:
            return None, str(e)

    def targets(self):
        """Each active target's job, instance, health and last error, for messages."""
        try:
            active = self.api("targets")["activeTargets"]
        except Failure as e:
            return str(e)
        return sorted((t["labels"].get("job"), t["labels"].get("instance"), t.get("health"),
                       t.get("lastError", "")) for t in active)

    def wait(self, what, probe, timeout):
        """Polls probe() -> (done, what it saw) every 2 s until done; returns what it saw."""
        deadline = time.time() + timeout
        while True:
            done, seen = probe()
            if done:
                return seen
            if time.time() > deadline:
                raise Failure(f"Prometheus: timed out after {timeout} s waiting for {what}; "
                              f"last seen: {seen}; targets: {self.targets()}")
            time.sleep(2)


def rule_groups(path):
    """{group name: [rule names]} of a Prometheus rules file."""
    with open(path) as f:
        groups = yaml.safe_load(f)["groups"]
    return {g["name"]: [r.get("alert") or r.get("record") for r in g["rules"]] for g in groups}


def check_prometheus(compose, prometheus, source):
    """Step 4: while the cluster trains, Prometheus scrapes every trainer, sees the
    training progress and has loaded the alerting rules; only its UI port is published,
    on 127.0.0.1, and it does not run as root. Returns the time of its last sample seen."""
    prometheus.wait("Prometheus to be ready", lambda: (prometheus.ready(), "not ready"), 60)

    def all_up():
        up = prometheus.query("up")
        return all(up.get(t) == 1 for t in SCRAPE_TARGETS), up
    up = prometheus.wait("every target up (up == 1)", all_up, 60)
    log("Prometheus: every target up: " + ", ".join(
        f"{job}/{instance}" for (job, instance), v in sorted(up.items()) if v == 1))

    ps_targets = {t for t in SCRAPE_TARGETS if t[0] == "mobilenet-ps"}
    worker_targets = SCRAPE_TARGETS - ps_targets

    def steps():
        values = prometheus.query("mobilenet_ps_global_step")
        return all(t in values for t in ps_targets), values
    first = prometheus.wait("mobilenet_ps_global_step of both PS", steps, 30)

    def risen():
        values = prometheus.query("mobilenet_ps_global_step")
        return all(values.get(t, 0) > first[t] for t in ps_targets), values
    later = prometheus.wait("mobilenet_ps_global_step to rise on both PS", risen, 60)
    log("Prometheus: mobilenet_ps_global_step rises: " + ", ".join(
        f"{instance} {first[(job, instance)]:.0f} -> {later[(job, instance)]:.0f}"
        for job, instance in sorted(ps_targets)))

    rates = {"rate(mobilenet_ps_pushes_total{result=\"applied\"}[30s])": ps_targets,
             "rate(mobilenet_worker_steps_total[30s])": worker_targets}
    for expr, targets in rates.items():
        def positive():
            values = prometheus.query(expr)
            return all(values.get(t, 0) > 0 for t in targets), values
        values = prometheus.wait(f"{expr} > 0 for {sorted(targets)}", positive, 60)
        log(f"Prometheus: {expr}: " + ", ".join(
            f"{instance} {values[(job, instance)]:.2f}/s" for job, instance in sorted(targets)))
    sampled_at = time.time()

    expected = rule_groups(os.path.join(source, "deploy", "prometheus", "rules.yml"))
    loaded = {g["name"]: [r["name"] for r in g["rules"]]
              for g in prometheus.api("rules")["groups"]}
    check(loaded == expected, f"Prometheus loaded the rule groups {loaded}; expected those "
                              f"of deploy/prometheus/rules.yml: {expected}")
    log("Prometheus: the rules of rules.yml are loaded: " + "; ".join(
        f"{name}: {len(rules)} rules" for name, rules in sorted(loaded.items())))

    # The UI the compose file and compose_demo.sh point to (Debian's package has the
    # classic one only), with every script of the graph page (the image drops files of a
    # package those come from).
    for path in ("/", "/classic/targets", "/classic/alerts", "/classic/graph"):
        code, text = prometheus.page(path)
        check(code == 200, f"Prometheus' UI: GET {path} answered {code}: {text[:300]}")
    scripts = re.findall(r'<script src="([^"?]+)', prometheus.page("/classic/graph")[1])
    broken = [(src, prometheus.page(src)[0]) for src in scripts]
    broken = [(src, code) for src, code in broken if code != 200]
    check(scripts and not broken, f"Prometheus' graph page: scripts {scripts}, of which "
                                  f"these do not load: {broken}")
    log(f"Prometheus' UI answers (/classic/targets, /classic/alerts, /classic/graph and its "
        f"{len(scripts)} scripts)")

    for service in TRAINERS + ("prometheus",):
        bindings = json.loads(inspect(compose.container(service),
                                      "{{json .HostConfig.PortBindings}}")) or {}
        published = {port: sorted({b.get("HostIp") for b in hosts or []})
                     for port, hosts in bindings.items()}
        expected_ports = ({"2222/tcp": ["127.0.0.1"]} if service.startswith("ps") else
                          {"9090/tcp": ["127.0.0.1"]} if service == "prometheus" else {})
        check(published == expected_ports,
              f"{service} publishes {published}; expected {expected_ports} (metrics port "
              "9100 on the compose network only, Prometheus' UI on 127.0.0.1 only)")
    uid = compose("exec", "-T", "prometheus", "id", "-u", capture=True, quiet=True).strip()
    check(uid not in ("", "0"), f"Prometheus runs as uid {uid!r}; expected a non-root user")
    log(f"published: each PS its gRPC port, Prometheus 9090 (uid {uid}), on 127.0.0.1 "
        "only; no metrics port")
    return sampled_at


def kill_like_a_crash(cid):
    """SIGKILLs the container's trainer process from the host. With `init: true` the
    container's first process is docker-init; the trainer is its child."""
    init_pid = int(inspect(cid, "{{.State.Pid}}"))
    check(init_pid > 0, f"container {cid[:12]} is not running")
    children = []
    try:
        with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        pass
    target = children[0] if children else init_pid
    with open(f"/proc/{target}/cmdline", "rb") as f:
        name = f.read().split(b"\0")[0].decode(errors="replace")
    log(f"kill -KILL {target} ({name}, host pid of container {cid[:12]}'s trainer)")
    os.kill(target, signal.SIGKILL)


def leftovers(project):
    """What the engine still holds of the compose project: ["container <id>", ...]."""
    label = f"label=com.docker.compose.project={project}"
    left = []
    for kind, cmd in (("container", ["docker", "ps", "-aq", "--filter", label]),
                      ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
                      ("network", ["docker", "network", "ls", "-q", "--filter", label])):
        out = run(cmd, capture=True, check_rc=False, quiet=True) or ""
        left += [f"{kind} {name}" for name in out.split()]
    return left


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--source_dir",
                        default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    source = os.path.abspath(args.source_dir)
    ctl = os.path.join(args.bin_dir, "mobilenet-ctl")
    if not os.access(ctl, os.X_OK):
        print(f"compose_e2e: {ctl} is missing; build mobilenet-ctl first", file=sys.stderr)
        return 1

    engine_running = subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL).returncode == 0 \
        if shutil.which("docker") else False
    if os.geteuid() != 0 and not engine_running:
        print("compose_e2e: skipped: no Docker engine runs and starting one needs root")
        return SKIP

    work = tempfile.mkdtemp(prefix="compose_e2e_")
    engine_state = os.path.join(work, "engine.state")
    engine = os.path.join(source, "deploy", "docker", "engine.sh")
    project = f"mobilenet-e2e-{os.getpid()}"
    *ports, prometheus_port = free_ports(3)
    certs_dir = os.path.join(work, "certs")
    env = dict(os.environ, **JOB_ENV, PS0_PORT=str(ports[0]), PS1_PORT=str(ports[1]),
               PROMETHEUS_PORT=str(prometheus_port), MOBILENET_IMAGE=IMAGE,
               PROMETHEUS_IMAGE=PROMETHEUS_IMAGE, MOBILENET_CERTS_DIR=certs_dir,
               DOCKERD_LOG=os.path.join(work, "dockerd.log"))
    prometheus = Prometheus(prometheus_port)
    compose = None
    timings = {}
    ok = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    try:
        t = time.time()
        log("1/9 Docker engine")
        run(["bash", engine, "start", "--state", engine_state], env=env, timeout=900)
        timings["engine"] = time.time() - t

        t = time.time()
        log("2/9 base image debian:bookworm-slim (built from Debian's packages when missing)")
        run(["bash", os.path.join(source, "deploy", "docker", "build_base_image.sh")],
            env=env, timeout=1500)
        timings["base image"] = time.time() - t
        t = time.time()
        log(f"2/9 image {IMAGE} (deploy/Dockerfile)")
        out = run(["docker", "build", "-q", "-f", os.path.join(source, "deploy", "Dockerfile"),
                   "-t", IMAGE, source], env=env, capture=True, timeout=2400)
        log("built " + out.strip().splitlines()[-1] if out.strip() else "built")
        timings["image"] = time.time() - t
        out = run(["docker", "run", "--rm", IMAGE, "sh", "-c",
                   "id -u; for b in mobilenet-ps mobilenet-worker mobilenet-ctl; do command -v $b; done; "
                   "test -w /var/lib/mobilenet && echo writable; "
                   "ls /usr/share/datasets/fashion-mnist"], capture=True, quiet=True)
        for expected in ("10001", "/usr/local/bin/mobilenet-ps", "/usr/local/bin/mobilenet-worker",
                         "/usr/local/bin/mobilenet-ctl", "writable",
                         "train-images-idx3-ubyte.gz"):
            check(expected in out.split(), f"the image lacks {expected!r}; it shows:\n{out}")
        size = int(inspect(IMAGE, "{{.Size}}"))
        log(f"image: user 10001, binaries on PATH, Fashion-MNIST, {size / 1e6:.0f} MB")
        t = time.time()
        compose = Compose(source, project, env)
        log(f"2/9 image {PROMETHEUS_IMAGE} (docker-compose build prometheus)")
        compose("build", "prometheus", capture=True)
        size = int(inspect(PROMETHEUS_IMAGE, "{{.Size}}"))
        log(f"built {PROMETHEUS_IMAGE}, {size / 1e6:.0f} MB")
        timings["prometheus image"] = time.time() - t

        t = time.time()
        num_ps, num_workers = cluster_size(compose)
        check((num_ps, num_workers) == (2, 2),
              f"the compose file has {num_ps} PS and {num_workers} workers; expected 2 and 2")
        log(f"3/9 certificates for {num_ps} PS and {num_workers} workers: {certs_dir}")
        run(["bash", os.path.join(source, "deploy", "make_certs.sh"), certs_dir, str(num_ps),
             str(num_workers)], capture=True, quiet=True)
        log(f"3/9 cluster up: project {project}, PS on 127.0.0.1:{ports[0]} and "
            f"127.0.0.1:{ports[1]}, Prometheus on 127.0.0.1:{prometheus_port}, "
            f"job {JOB_ENV}")
        compose("up", "-d")
        status = Status(ctl, ports, tls_flags(certs_dir, "monitor"))
        s = status.wait("both PS answering and global step >= 30",
                        lambda s: answering(s) == 2 and step(s) >= 30, 300)
        log(f"training: global step {step(s)}, workers seen: "
            f"{[w.get('worker_id') for w in s.get('workers', [])]}")
        timings["up to step 30"] = time.time() - t
        run([ctl, "status", "--ps_hosts=" + ",".join(f"127.0.0.1:{p}" for p in ports),
             *tls_flags(certs_dir, "monitor")])

        t = time.time()
        log(f"4/9 monitoring: Prometheus on http://127.0.0.1:{prometheus_port}")
        sampled_at = check_prometheus(compose, prometheus, source)
        timings["prometheus"] = time.time() - t

        t = time.time()
        log("5/9 transport security")
        check_transport_security(compose, status, ctl, ports, certs_dir, work, source)
        timings["transport security"] = time.time() - t

        t = time.time()
        log("6/9 worker 1 crashes (SIGKILL from the host)")
        worker1 = compose.container("worker1")
        restarts_before = int(inspect(worker1, "{{.RestartCount}}"))
        kill_like_a_crash(worker1)
        step_at_kill = step(status.get())
        deadline = time.time() + 120
        while True:
            restarts = int(inspect(worker1, "{{.RestartCount}}"))
            running = inspect(worker1, "{{.State.Running}}") == "true"
            if restarts > restarts_before and running:
                break
            check(time.time() < deadline, "worker1 was not restarted within 120 s "
                  f"(restart count {restarts}, running {running})")
            time.sleep(1)
        log(f"worker1 restarted by the engine (restart count {restarts})")
        s = status.wait(f"the global step to pass {step_at_kill + 30}",
                        lambda s: step(s) >= step_at_kill + 30, 180)
        log(f"training continues: global step {step_at_kill} at the kill, now {step(s)}")

        def joins():
            logs = run(["docker", "logs", worker1], capture=True, quiet=True)
            return logs.count("Joined as worker 1")
        deadline = time.time() + 120
        while joins() < 2:
            check(time.time() < deadline, "the restarted worker1 did not rejoin in 120 s")
            time.sleep(2)
        log("worker1 rejoined the cluster")
        timings["crash and recovery"] = time.time() - t

        t = time.time()
        log("7/9 stop, then up again: the PS resume from the checkpoint volume")
        step_at_stop = step(status.get())
        compose("stop")
        compose("up", "-d")
        s = status.wait("both PS answering again", lambda s: answering(s) == 2, 180)
        check(step(s) >= step_at_stop,
              f"the global step went back from {step_at_stop} to {step(s)} after stop/up")
        for ps in ("ps0", "ps1"):
            ps_log = run(["docker", "logs", compose.container(ps)], capture=True, quiet=True)
            check("] restored " in ps_log,
                  f"{ps} does not say it restored a checkpoint after up")
        log(f"resumed at global step {step(s)} (was {step_at_stop} when stopped)")
        prometheus.wait("Prometheus to be ready after up",
                        lambda: (prometheus.ready(), "not ready"), 60)
        before = prometheus.query("mobilenet_ps_global_step", at=sampled_at)
        check(all(t in before for t in SCRAPE_TARGETS if t[0] == "mobilenet-ps"),
              f"after stop/up Prometheus has no mobilenet_ps_global_step of both PS from "
              f"before the stop (at {time.ctime(sampled_at)}): {before}")
        log("Prometheus kept the samples from before the stop (global step "
            + ", ".join(f"{i} {v:.0f}" for (_, i), v in sorted(before.items())) + ")")
        timings["stop and resume"] = time.time() - t

        t = time.time()
        log("8/9 training runs to its end")
        chief = compose.container("worker0")
        deadline = time.time() + 900
        while inspect(chief, "{{.State.Status}}") != "exited":
            check(time.time() < deadline, "training did not end within 900 s")
            time.sleep(5)
        time.sleep(5)  # the PS shut down once the chief said the training is over
        chief_log = run(["docker", "logs", chief], capture=True, quiet=True)
        accuracy = [line for line in chief_log.splitlines() if line.startswith("Test accuracy")]
        check(accuracy, "the chief did not report a test accuracy")
        log("chief: " + accuracy[-1])
        average = [line for line in chief_log.splitlines() if line.startswith("Weight average:")]
        check(average, "the chief did not report the weight average's test accuracy "
              "(WEIGHT_EMA_DECAY=0.99 reaches every process?)")
        log("chief: " + average[-1])
        for service in TRAINERS:
            cid = compose.container(service)
            deadline = time.time() + 60
            while inspect(cid, "{{.State.Status}}") != "exited":
                check(time.time() < deadline, f"{service} still running 60 s after the end")
                time.sleep(2)
            code = inspect(cid, "{{.State.ExitCode}}")
            check(code == "0", f"{service} exited with {code}")
        time.sleep(3)
        for service in TRAINERS:
            check(inspect(compose.container(service), "{{.State.Status}}") == "exited",
                  f"{service} was restarted after exiting 0")
        log("every trainer container exited 0 and stayed stopped")
        check(inspect(compose.container("prometheus"), "{{.State.Status}}") == "running",
              "Prometheus stopped with the trainers; it should keep running")

        def all_down():
            up = prometheus.query("up")
            return all(up.get(t) == 0 for t in SCRAPE_TARGETS), up
        prometheus.wait("every target down once training is over", all_down, 60)
        peak = prometheus.query("max_over_time(mobilenet_ps_global_step[30m])")
        log("Prometheus keeps running; the four targets are down (training is over); "
            "the highest global step it saw: "
            + ", ".join(f"{i} {v:.0f}" for (_, i), v in sorted(peak.items())))
        timings["to the end"] = time.time() - t
        ok = True
    except (Failure, subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        print(f"compose_e2e: FAILED: {e}", file=sys.stderr, flush=True)
        if compose is not None:
            print("---- compose logs (last 40 lines per service) ----", flush=True)
            compose("logs", "--no-color", "--tail=40", check_rc=False, timeout=120)
        dockerd_log = env["DOCKERD_LOG"]
        if os.path.exists(dockerd_log):
            print("---- dockerd log (last 20 lines) ----", flush=True)
            with open(dockerd_log) as f:
                print("".join(f.readlines()[-20:]), flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if args.keep:
            log(f"--keep: cluster {project} and the engine left running "
                f"(stop: deploy/docker/engine.sh stop --state {engine_state})")
        else:
            log("9/9 teardown")
            if compose is not None:
                try:
                    t = time.time()
                    compose("down", "-v", "--remove-orphans", check_rc=False, timeout=300)
                    timings["down -v"] = time.time() - t
                    left = leftovers(project)
                    if left:
                        print(f"compose_e2e: FAILED: `down -v` left {left}", file=sys.stderr)
                        ok = False
                    else:
                        log(f"nothing of project {project} is left (containers, volumes, "
                            "networks)")
                except Exception as e:  # keep going: the engine must still be stopped
                    print(f"compose_e2e: down failed: {e}", file=sys.stderr)
                    ok = False
            run(["bash", engine, "stop", "--state", engine_state], env=env, check_rc=False,
                timeout=180)
            shutil.rmtree(work, ignore_errors=True)
    if timings:
        log("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("compose_e2e: " + ("passed" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
