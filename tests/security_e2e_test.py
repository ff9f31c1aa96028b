#!/usr/bin/python3
"""Transport security of real mobilenet-ps processes, tried as an outsider, a compromised
worker and a monitor would: credentials made by deploy/make_certs.sh, clients generated
from the project's .proto (tests/ps_client_for_test.py).

Scenarios (one ctest entry each, see tests/security_e2e.cmake):
  bind_refusal     mobilenet-ps on 0.0.0.0 without TLS or tokens refuses to start (exit
                   1, saying how to make certificates); with --insecure it starts, warns
                   and says so in Status; with TLS it starts. On loopback it may stay
                   insecure.
  hostile_callers  a server on 0.0.0.0 with mutual TLS and bearer tokens: no client
                   certificate, another CA's, an expired one (UNAVAILABLE or
                   UNAUTHENTICATED), a wrong token (UNAUTHENTICATED), a worker pushing or
                   finishing as another, a non-chief or a monitor ending the training or
                   reporting an evaluation, a monitor pushing (PERMISSION_DENIED): each
                   refused, and afterwards the version, the weights bit for bit, the
                   ledger and the evaluation are as before; the refusals are counted.
                   Health answers in plaintext on --health_address, and nothing else
                   does there. The chief then ends the training (exit 0).
  rotation         2 workers train against a mutual-TLS server; midway every certificate
                   and token is made anew (make_certs.sh --rotate): the server presents
                   its new certificate to new connections within seconds, the new monitor
                   credentials work, training goes on and ends normally (exit 0 all).

Usage: security_e2e_test.py --bin_dir DIR --scenario NAME [--source_dir DIR] [--keep]
Exit 0 when it passes, 1 when it fails, 77 when skipped (no Fashion-MNIST for rotation).
"""

import argparse
import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

try:
    import grpc
except ImportError as e:
    print("FAILED: %s: install Debian's python3-grpcio" % e)
    sys.exit(1)

from e2e_common import DATA_DIR, SKIP, Failure, check, free_ports
import ps_client_for_test as pst
from ps_client_for_test import MODEL_FLAGS, PsClient, PsProcess, ShardInfo

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
NUM_WORKERS = 2


class Run:
    """The credentials, servers, workers and clients of one scenario, in `run_dir`."""

    def __init__(self, bin_dir, stubs, run_dir, source_dir):
        self.bin_dir = bin_dir
        self.stubs = stubs
        self.pb = stubs.pb
        self.run_dir = run_dir
        self.source_dir = source_dir
        self.servers, self.clients, self.workers = [], [], []
        self.codes = grpc.StatusCode

    def make_certs(self, folder, num_ps=1, num_workers=NUM_WORKERS, extra=()):
        """deploy/make_certs.sh into run_dir/<folder>; returns that folder."""
        out_dir = os.path.join(self.run_dir, folder)
        out = subprocess.run(["bash", os.path.join(self.source_dir, "deploy", "make_certs.sh"),
                              out_dir, str(num_ps), str(num_workers)] + list(extra),
                             capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, "make_certs.sh failed (exit %d): %s%s" %
              (out.returncode, out.stdout, out.stderr))
        return out_dir

    def server(self, listen="127.0.0.1", extra=()):
        ps = PsProcess(self.bin_dir, self.run_dir,
                       os.path.join(self.run_dir, "ps-checkpoints-%d" % len(self.servers)),
                       name="ps%d" % len(self.servers),
                       ps_hosts="%s:%d" % (listen, free_ports(1)[0]), extra=extra)
        self.servers.append(ps)
        return ps

    def client(self, ps, certs=None, name=None, ca=None, token_of=None, token=None):
        """A client of `ps` over 127.0.0.1: plaintext when `certs` is None; else TLS
        trusting `ca` (default certs/ca.crt) and presenting <certs>/<name>.crt (none when
        `name` is None), expecting the server to be ps-0; with the bearer token of
        `token_of` (<certs>/tokens/<token_of>.token) or `token`."""
        credentials = None
        if certs is not None:
            read = lambda path: open(path, "rb").read()
            root = read(ca or os.path.join(certs, "ca.crt"))
            if name is None:
                credentials = grpc.ssl_channel_credentials(root_certificates=root)
            else:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=root,
                    private_key=read(os.path.join(certs, name + ".key")),
                    certificate_chain=read(os.path.join(certs, name + ".crt")))
        if token_of is not None:
            with open(os.path.join(certs, "tokens", token_of + ".token")) as f:
                token = f.read().split()[1]
        address = "127.0.0.1:" + ps.address.rsplit(":", 1)[1]
        client = PsClient(self.stubs, address, deadline_secs=10, credentials=credentials,
                          server_name="ps-0" if certs is not None else None, token=token)
        self.clients.append(client)
        return client

    def worker(self, ps, index, certs, extra=()):
        log_path = os.path.join(self.run_dir, "worker%d.log" % index)
        args = ([os.path.join(self.bin_dir, "mobilenet-worker"), "--ps_hosts=" + ps.ps_hosts,
                 "--worker_hosts=" + ps.worker_hosts, "--job_name=worker",
                 "--task_index=%d" % index, "--threads=1", "--eval_every_epochs=0"] +
                MODEL_FLAGS + tls_flags(certs, "worker-%d" % index) + list(extra))
        with open(log_path, "w") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append((proc, log_path))
        return proc, log_path

    def cleanup(self):
        for client in self.clients:
            client.close()
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for ps in self.servers:
            ps.kill()


def tls_flags(certs, name, tokens=False):
    flags = ["--tls_cert_file=%s/%s.crt" % (certs, name),
             "--tls_key_file=%s/%s.key" % (certs, name),
             "--tls_ca_file=%s/ca.crt" % certs]
    if tokens:
        flags.append("--auth_token_file=%s/tokens/%s" %
                     (certs, "server.tokens" if name.startswith("ps-") else name + ".token"))
    return flags


def expect(outcome, code, what, mentions=()):
    check(outcome.code == code, "%s: expected %s, got %s %s" %
          (what, code.name, outcome.code.name, outcome.details[:500]))
    for text in mentions:
        check(text in outcome.details, "%s: the %s message does not mention %r: %s" %
              (what, code.name, text, outcome.details[:500]))
    print("  %-58s %s" % (what, code.name))


def wait_listening(ps, timeout=30):
    """Waits until the server accepts connections on its port (it may answer nothing
    over plaintext)."""
    deadline = time.time() + timeout
    port = int(ps.address.rsplit(":", 1)[1])
    while time.time() < deadline:
        check(ps.running(), "%s exited with %s:\n%s" % (ps.name, ps.proc.poll(), ps.tail()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("%s does not listen after %ds:\n%s" % (ps.name, timeout, ps.tail()))


def presented_certificate(ps, ca_file):
    """The DER certificate the server presents to a new TLS connection."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    port = int(ps.address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname="ps-0") as tls:
            return tls.getpeercert(binary_form=True)


def certificate_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def expired_certificate(certs, name, out_stem):
    """A certificate for `name` signed by the cluster's CA that expired yesterday, written
    to <certs>/<out_stem>.crt/.key (python3-cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    with open(os.path.join(certs, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(certs, "ca.crt"), "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                              ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(certs, out_stem + ".crt"), "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    path = os.path.join(certs, out_stem + ".key")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


# ---- scenarios


def scenario_bind_refusal(run):
    certs = run.make_certs("certs")
    exposed = run.server(listen="0.0.0.0")
    exposed.start()
    code = exposed.wait_exit(20)
    log = exposed.log()
    check(code == 1, "mobilenet-ps on 0.0.0.0 without security: exit %s, expected 1:\n%s" %
          (code, exposed.tail()))
    for text in ("refusing to listen on 0.0.0.0", "deploy/make_certs.sh", "--insecure"):
        check(text in log, "the refusal does not mention %r:\n%s" % (text, exposed.tail()))
    print("0.0.0.0 without TLS or tokens: exit 1, %r" %
          next(line for line in log.splitlines() if "refusing" in line)[:120])

    deliberate = run.server(listen="0.0.0.0", extra=["--insecure"])
    deliberate.start()
    client = run.client(deliberate)
    status = deliberate.wait_serving(client)
    check(status.insecure and status.transport_security.startswith("none"),
          "--insecure: Status says insecure=%s transport_security=%r" %
          (status.insecure, status.transport_security))
    check("WARNING" in deliberate.log() and "--insecure" in deliberate.log(),
          "--insecure: no warning at start:\n%s" % deliberate.tail())
    print("0.0.0.0 with --insecure: serves, warns, Status insecure=true")

    secured = run.server(listen="0.0.0.0", extra=tls_flags(certs, "ps-0"))
    secured.start()
    monitor = run.client(secured, certs, "monitor")
    status = secured.wait_serving(monitor)
    check(status.transport_security == "mutual TLS" and not status.insecure,
          "TLS on 0.0.0.0: Status says %r, insecure=%s" %
          (status.transport_security, status.insecure))
    print("0.0.0.0 with mutual TLS: serves, Status %r" % status.transport_security)

    loopback = run.server()
    loopback.start()
    status = loopback.wait_serving(run.client(loopback))
    check(status.transport_security.startswith("none") and not status.insecure,
          "loopback: Status says %r, insecure=%s" % (status.transport_security, status.insecure))
    print("127.0.0.1 without security: serves (loopback only)")


def scenario_hostile_callers(run):
    certs = run.make_certs("certs")
    stranger = run.make_certs("stranger-certs")
    expired_certificate(certs, "worker-1", "expired-worker-1")
    health_port = free_ports(1)[0]
    ps = run.server(listen="0.0.0.0", extra=tls_flags(certs, "ps-0", tokens=True) +
                    ["--health_address=127.0.0.1:%d" % health_port])
    ps.start()
    monitor = run.client(ps, certs, "monitor", token_of="monitor")
    status = ps.wait_serving(monitor)
    check(status.transport_security == "mutual TLS and bearer tokens",
          "Status transport_security %r" % status.transport_security)
    info = ShardInfo(status)
    chief = run.client(ps, certs, "worker-0", token_of="worker-0")
    worker1 = run.client(ps, certs, "worker-1", token_of="worker-1")
    # A push that lands: the state the refusals must leave alone.
    pulled = worker1.pull(info, worker_id=1)
    out = worker1.call("Push", worker1.push_request(info, pulled, worker_id=1))
    expect(out, run.codes.OK, "worker-1 pushes as itself")
    before = monitor.pull(info)
    status_before = monitor.status()

    finish = lambda worker_id, complete: run.pb.FinishRequest(
        plan_fingerprint=info.fingerprint, worker_id=worker_id, training_complete=complete,
        model=info.model, num_shards=info.num_shards)
    evaluation = run.pb.EvaluationReport(
        plan_fingerprint=info.fingerprint, worker_id=0, global_step=1, examples=100,
        correct=100, loss=0.01, model=info.model, num_shards=info.num_shards)
    push_as = lambda client, worker_id: client.push_request(info, before, worker_id=worker_id)
    tool_pull = run.pb.PullRequest(plan_fingerprint=info.fingerprint, shard_index=0,
                                   include_state=True, worker_id=-1, model=info.model,
                                   num_shards=info.num_shards)
    unauthenticated = 0
    print("refused:")
    # Outsiders: no certificate (with the right token or none), another CA, expired.
    outsider = run.client(ps, certs, None)
    expect(outsider.call("Finish", finish(0, True)), run.codes.UNAUTHENTICATED,
           "an outsider ends the training", ["no client certificate"])
    expect(outsider.call("Pull", tool_pull), run.codes.UNAUTHENTICATED,
           "an outsider reads the weights")
    expect(outsider.call("Push", push_as(outsider, 0)), run.codes.UNAUTHENTICATED,
           "an outsider pushes as the chief")
    unauthenticated += 3
    with_token = run.client(ps, certs, None, token_of="worker-0")
    expect(with_token.call("Finish", finish(0, True)), run.codes.UNAUTHENTICATED,
           "a stolen chief token without a certificate")
    unauthenticated += 1
    other_ca = run.client(ps, stranger, "worker-0", ca=os.path.join(certs, "ca.crt"))
    expect(other_ca.call("Finish", finish(0, True)), run.codes.UNAVAILABLE,
           "a certificate of another CA")
    expired = run.client(ps, certs, "expired-worker-1", token_of="worker-1")
    expect(expired.call("Push", push_as(expired, 1)), run.codes.UNAVAILABLE,
           "an expired certificate")
    # A member's certificate with a wrong token, or with another member's token.
    wrong = "x" * 64
    wrong_token = run.client(ps, certs, "worker-1", token=wrong)
    outcome = wrong_token.call("Push", push_as(wrong_token, 1))
    expect(outcome, run.codes.UNAUTHENTICATED, "worker-1 with a wrong token",
           ["not one this server accepts"])
    check(wrong not in outcome.details, "the refusal repeats the presented token")
    borrowed = run.client(ps, certs, "worker-1", token_of="worker-0")
    expect(borrowed.call("Finish", finish(0, True)), run.codes.UNAUTHENTICATED,
           "worker-1's certificate with the chief's token",
           ["certificate names worker-1 but the bearer token worker-0"])
    unauthenticated += 2
    # A compromised worker and a monitor, each fully authenticated.
    denied = 0
    for what, client, rpc, request, message in [
            ("worker-1 pushes as worker 0", worker1, "Push", push_as(worker1, 0),
             "worker-1 may not push as worker 0"),
            ("worker-1 finishes as the chief", worker1, "Finish", finish(0, True),
             "worker-1 may not finish as worker 0"),
            ("worker-1 ends the training", worker1, "Finish", finish(1, True),
             "worker-1 may not end the training"),
            ("worker-1 reports an evaluation", worker1, "ReportEvaluation", evaluation,
             "worker-1 may not report evaluations"),
            ("the monitor pushes", monitor, "Push", push_as(monitor, 1),
             "monitor may not push"),
            ("the monitor ends the training", monitor, "Finish", finish(0, True),
             "monitor may not finish"),
            ("the monitor reports an evaluation", monitor, "ReportEvaluation", evaluation,
             "monitor may not report evaluations")]:
        expect(client.call(rpc, request), run.codes.PERMISSION_DENIED, what, [message])
        denied += 1

    # Nothing changed.
    time.sleep(1)
    check(ps.running(), "the server exited after the refusals:\n%s" % ps.tail())
    after = monitor.pull(info)
    check(after.version == before.version and after.parameters == before.parameters and
          after.state == before.state,
          "the refusals changed the weights (version %d -> %d)" % (before.version, after.version))
    status = monitor.status()
    for field in ("global_step", "examples_seen", "pushes_applied", "eval_examples",
                  "finishing", "training_complete"):
        check(getattr(status, field) == getattr(status_before, field),
              "the refusals changed Status.%s: %s -> %s" %
              (field, getattr(status_before, field), getattr(status, field)))
    for row, row_before in zip(status.workers, status_before.workers):
        check(row.pushes == row_before.pushes and row.finished == row_before.finished and
              row.examples == row_before.examples,
              "the refusals changed worker %d's ledger row" % row.worker_id)
    check(status.workers[0].seconds_since_last_seen == -1,
          "worker 0 counts as seen although only impersonators named it")
    check(status.requests_denied == denied and
          status.requests_unauthenticated == unauthenticated,
          "Status counts %d denied / %d unauthenticated, expected %d / %d" %
          (status.requests_denied, status.requests_unauthenticated, denied, unauthenticated))
    print("after %d denied and %d unauthenticated requests (and 2 failed handshakes): "
          "version %d, weights identical, ledger and evaluation unchanged" %
          (denied, unauthenticated, after.version))

    # Health is open in plaintext on its own port, and serves nothing else.
    health = grpc.insecure_channel("127.0.0.1:%d" % health_port)
    answer = health.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
    check(answer == b"\x08\x01", "health check answered %r, expected SERVING" % answer)
    try:
        health.unary_unary("/mobilenet.ps.v1.ParameterServer/GetStatus")(b"", timeout=10)
        raise Failure("the health port serves GetStatus")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNIMPLEMENTED,
              "GetStatus on the health port: %s, expected UNIMPLEMENTED" % e.code())
    health.close()
    print("health port: SERVING in plaintext; GetStatus there: UNIMPLEMENTED")

    # The chief may end the training; the server then checkpoints and exits 0.
    expect(chief.call("Finish", finish(0, True)), run.codes.OK, "(allowed) the chief ends it")
    code = ps.wait_exit(60)
    check(code == 0, "the server exited %s after the chief's Finish:\n%s" % (code, ps.tail()))


def scenario_rotation(run):
    if not os.path.exists(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz")):
        print("Fashion-MNIST not found in %s; skipping" % DATA_DIR)
        return SKIP
    certs = run.make_certs("certs")
    ps = run.server(extra=tls_flags(certs, "ps-0"))
    ps.start()
    monitor = run.client(ps, certs, "monitor")
    ps.wait_serving(monitor)
    old_der = presented_certificate(ps, os.path.join(certs, "ca.crt"))
    check(old_der == certificate_der(os.path.join(certs, "ps-0.crt")),
          "the server does not present certs/ps-0.crt")
    workers = [run.worker(ps, i, certs, ["--epochs=1.5"]) for i in range(NUM_WORKERS)]
    deadline = time.time() + 120
    while monitor.status().global_step < 50:
        check(time.time() < deadline, "training did not reach step 50 in 120 s")
        check(all(proc.poll() is None for proc, _ in workers), "a worker exited early")
        time.sleep(0.5)
    step_at_rotation = monitor.status().global_step
    out = subprocess.run(["bash", os.path.join(run.source_dir, "deploy", "make_certs.sh"),
                          certs, "1", str(NUM_WORKERS), "--rotate"],
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, "make_certs.sh --rotate failed: %s" % out.stderr)
    new_der = certificate_der(os.path.join(certs, "ps-0.crt"))
    check(new_der != old_der, "--rotate did not make a new ps-0 certificate")
    rotated = time.time()
    while presented_certificate(ps, os.path.join(certs, "ca.crt")) != new_der:
        check(time.time() - rotated < 20,
              "the server still presents its old certificate 20 s after the rotation")
        time.sleep(0.25)
    print("rotated at global step %d: the server presents its new certificate after %.1fs" %
          (step_at_rotation, time.time() - rotated))
    fresh_monitor = run.client(ps, certs, "monitor")  # the new files
    status = fresh_monitor.status()
    print("new monitor credentials: GetStatus OK at step %d" % status.global_step)
    for index, (proc, log_path) in enumerate(workers):
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            raise Failure("worker %d still training 300 s later" % index)
        with open(log_path, errors="replace") as f:
            log = f.read()
        check(code == 0, "worker %d exited %d after the rotation:\n%s" %
              (index, code, log[-2000:]))
    code = ps.wait_exit(60)
    check(code == 0, "the server exited %d:\n%s" % (code, ps.tail()))
    with open(workers[0][1], errors="replace") as f:
        chief_log = f.read()
    check("Training complete" in chief_log, "the chief did not complete the training")
    print("training went on past the rotation and ended normally: workers and server exit 0")


SCENARIOS = {
    "bind_refusal": scenario_bind_refusal,
    "hostile_callers": scenario_hostile_callers,
    "rotation": scenario_rotation,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--source_dir", default=SOURCE_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))
    run_dir = tempfile.mkdtemp(prefix="security_%s_" % args.scenario)
    print("run folder %s" % run_dir)
    start = time.time()
    outcome = "FAILED"
    run = None
    try:
        stubs = pst.load_stubs(os.path.join(args.source_dir, "proto"),
                               os.path.join(run_dir, "stubs"))
        bin_dir = pst.copy_binaries(args.bin_dir, os.path.join(run_dir, "bin"))
        run = Run(bin_dir, stubs, run_dir, args.source_dir)
        outcome = "SKIPPED" if SCENARIOS[args.scenario](run) == SKIP else "PASSED"
    except Failure as e:
        print("FAILED: %s" % e)
    finally:
        if run is not None:
            run.cleanup()
        if outcome == "FAILED":
            pst.dump_logs(run_dir)
        elif not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print("%s in %.0fs" % (outcome, time.time() - start))
    return {"PASSED": 0, "SKIPPED": SKIP}.get(outcome, 1)


if __name__ == "__main__":
    sys.exit(main())
