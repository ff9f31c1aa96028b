#!/usr/bin/python3
"""End-to-end test of the docker-compose cluster (deploy/docker-compose.yml) on a real
Docker engine, on mutual TLS:

  1. starts dockerd when no engine runs (installing docker.io, docker-compose, debootstrap
     and iptables from Debian when missing: deploy/docker/engine.sh);
  2. builds the base image debian:bookworm-slim from Debian's packages when it is missing
     (deploy/docker/build_base_image.sh), then the trainer image (deploy/Dockerfile);
  3. makes the cluster's certificates with deploy/make_certs.sh (for the compose file's
     PS and workers, into a temporary folder: MOBILENET_CERTS_DIR), brings the compose
     cluster up (2 PS, 2 workers; a short job: small resolution, few epochs) on free host
     ports and follows it through the status RPC *from the host* (this build's
     mobilenet-ctl with the monitor's certificate against the PS ports published on
     127.0.0.1);
  4. transport security: every PS reports "mutual TLS"; mobilenet-ctl status answers
     inside the compose network too (the monitor's certificate from ps0's volume);
     without a certificate, or with one of another CA, no PS answers; each container
     holds, read-only, the CA's certificate and its own certificate and key (a PS also
     the monitor's), the keys mode 0400 of uid 10001, and no other key, the CA's neither;
     the image's mobilenet-ps refuses to listen on 0.0.0.0 without TLS; rotated
     certificates (make_certs.sh --rotate, `up -d certs`) are served within seconds,
     without a restart;
  5. kills worker 1's trainer process with SIGKILL from the host, as a crash looks (not
     `docker kill`, which the engine takes for a manual stop and does not restart), and
     checks that the global step keeps rising and the worker comes back by itself;
  6. `stop`s the cluster and brings it `up` again: the PS restore their checkpoints from
     the named volume, so the global step does not go back;
  7. waits for the end of training: the chief reports its test accuracy, every container
     exits 0 and is not restarted;
  8. tears everything down (`down -v`), stops the dockerd it started and puts the iptables
     FORWARD policy back, on failure and interruption too. On failure it prints the
     compose logs.

Usage: compose_e2e_test.py --bin_dir DIR [--source_dir DIR] [--keep]
  --bin_dir     where this build's mobilenet-ctl is (tests/compose_e2e.cmake passes it)
  --source_dir  the repository (default: this file's parent folder)
  --keep        leave the cluster and the engine running (for debugging)
Needs root (it starts dockerd and may install packages). Exit 77 (skipped) when not root
and no Docker engine answers.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from e2e_common import Failure, check, free_ports

SKIP = 77
IMAGE = "mobilenet-v1-trainer:latest"
# Where the services mount their volume tls-<service> (deploy/docker-compose.yml), and
# the certificates (and keys) each finds there.
TLS_IN_CONTAINER = "/etc/mobilenet/tls"
TLS_FILES = {"ps0": ["ca", "ps-0", "monitor"], "ps1": ["ca", "ps-1", "monitor"],
             "worker0": ["ca", "worker-0"], "worker1": ["ca", "worker-1"]}
# The short job: 2 workers x 4 epochs of their half of Fashion-MNIST at 32x32, 1 thread
# each (a few minutes on 2 cores), checkpoints every 10 s so that stop/up has one to resume.
JOB_ENV = {"EPOCHS": "4", "RESOLUTION": "32", "WORKER_THREADS": "1", "EVAL_EVERY_SECS": "0",
           "CHECKPOINT_EVERY_SECS": "10"}


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
    services = ("ps0", "ps1", "worker0", "worker1")
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
    ports = free_ports(2)
    certs_dir = os.path.join(work, "certs")
    env = dict(os.environ, **JOB_ENV, PS0_PORT=str(ports[0]), PS1_PORT=str(ports[1]),
               MOBILENET_IMAGE=IMAGE, MOBILENET_CERTS_DIR=certs_dir,
               DOCKERD_LOG=os.path.join(work, "dockerd.log"))
    compose = None
    timings = {}
    ok = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    try:
        t = time.time()
        log("1/8 Docker engine")
        run(["bash", engine, "start", "--state", engine_state], env=env, timeout=900)
        timings["engine"] = time.time() - t

        t = time.time()
        log("2/8 base image debian:bookworm-slim (built from Debian's packages when missing)")
        run(["bash", os.path.join(source, "deploy", "docker", "build_base_image.sh")],
            env=env, timeout=1500)
        timings["base image"] = time.time() - t
        t = time.time()
        log(f"2/8 image {IMAGE} (deploy/Dockerfile)")
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
        num_ps, num_workers = cluster_size(compose)
        check((num_ps, num_workers) == (2, 2),
              f"the compose file has {num_ps} PS and {num_workers} workers; expected 2 and 2")
        log(f"3/8 certificates for {num_ps} PS and {num_workers} workers: {certs_dir}")
        run(["bash", os.path.join(source, "deploy", "make_certs.sh"), certs_dir, str(num_ps),
             str(num_workers)], capture=True, quiet=True)
        log(f"3/8 cluster up: project {project}, PS on 127.0.0.1:{ports[0]} and "
            f"127.0.0.1:{ports[1]}, job {JOB_ENV}")
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
        log("4/8 transport security")
        check_transport_security(compose, status, ctl, ports, certs_dir, work, source)
        timings["transport security"] = time.time() - t

        t = time.time()
        log("5/8 worker 1 crashes (SIGKILL from the host)")
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
        log("6/8 stop, then up again: the PS resume from the checkpoint volume")
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
        timings["stop and resume"] = time.time() - t

        t = time.time()
        log("7/8 training runs to its end")
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
        for service in ("ps0", "ps1", "worker0", "worker1"):
            cid = compose.container(service)
            deadline = time.time() + 60
            while inspect(cid, "{{.State.Status}}") != "exited":
                check(time.time() < deadline, f"{service} still running 60 s after the end")
                time.sleep(2)
            code = inspect(cid, "{{.State.ExitCode}}")
            check(code == "0", f"{service} exited with {code}")
        time.sleep(3)
        for service in ("ps0", "ps1", "worker0", "worker1"):
            check(inspect(compose.container(service), "{{.State.Status}}") == "exited",
                  f"{service} was restarted after exiting 0")
        log("every container exited 0 and stayed stopped")
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
            log("8/8 teardown")
            if compose is not None:
                try:
                    compose("down", "-v", "--remove-orphans", check_rc=False, timeout=300)
                except Exception as e:  # keep going: the engine must still be stopped
                    print(f"compose_e2e: down failed: {e}", file=sys.stderr)
            run(["bash", engine, "stop", "--state", engine_state], env=env, check_rc=False,
                timeout=180)
            shutil.rmtree(work, ignore_errors=True)
    if timings:
        log("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("compose_e2e: " + ("passed" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
