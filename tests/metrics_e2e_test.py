#!/usr/bin/python3
"""The /metrics output of a real mobilenet-ps and a real mobilenet-worker passes `promtool
check metrics` (Prometheus' own parser and linter: names, types, units, help texts), and
holds the server's and its gRPC calls' metrics after a few calls (mobilenet-ctl status),
and the worker's once it trains; `mobilenet-ctl report --ps_hosts` charts the running
cluster from its Status for a few seconds.

Starts mobilenet-ps on loopback with --metrics_address=127.0.0.1:<free port>, waits for
/metrics to answer, asks for the status twice, scrapes and checks; then a worker on
synthetic data with its own --metrics_address, scraped and checked once it has trained a
few steps; stops both with SIGTERM (they must exit 0). Skipped (exit 77) when promtool is not installed and cannot be
(Debian's prometheus package; deploy/install_deps.sh --test installs it).

Usage: metrics_e2e_test.py --bin_dir DIR
Exit 0 when it passes, 1 when it fails, 77 when skipped.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import SHARED_FLAGS, SKIP, Failure, check, free_ports  # noqa: E402


def find_promtool():
    """promtool's path, installing Debian's prometheus package if root may; None if not."""
    path = shutil.which("promtool")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("promtool not found: installing Debian's prometheus package", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "prometheus"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        path = shutil.which("promtool")
    return path


def scrape(port, timeout):
    """The body of GET /metrics, retried until `timeout` seconds have passed."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                check(r.status == 200, "GET /metrics answered %d" % r.status)
                return r.read().decode()
        except OSError as e:
            if time.time() > deadline:
                raise Failure("no answer on /metrics (port %d) after %d s: %s" %
                              (port, timeout, e))
            time.sleep(0.2)


def promtool_check(promtool, body, what):
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                          text=True, timeout=60)
    check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
          "promtool check metrics on %s exited %d:\n%s%s" % (what, lint.returncode, lint.stdout,
                                                             lint.stderr))
    print("promtool check metrics on %s: clean (%d lines)" % (what, len(body.splitlines())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    args = parser.parse_args()
    promtool = find_promtool()
    if promtool is None:
        print("SKIPPED: promtool is not installed (Debian's prometheus package)")
        return SKIP
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))
    run_dir = tempfile.mkdtemp(prefix="metrics_e2e_")
    log_path = os.path.join(run_dir, "ps0.log")
    ps_port, worker_port, metrics_port, worker_metrics_port = free_ports(4)
    ps_hosts = "127.0.0.1:%d" % ps_port
    command = [os.path.join(args.bin_dir, "mobilenet-ps"), "--ps_hosts=" + ps_hosts,
               "--worker_hosts=127.0.0.1:%d" % worker_port, "--job_name=ps", "--task_index=0",
               "--metrics_address=127.0.0.1:%d" % metrics_port, "--log_every_secs=0",
               "--checkpoint_dir=" + os.path.join(run_dir, "checkpoints")] + SHARED_FLAGS
    env = dict(os.environ)
    env.pop("MOBILENET_CLUSTER", None)
    ok = False
    server = None
    worker = None
    worker_log_path = os.path.join(run_dir, "worker0.log")
    try:
        with open(log_path, "w") as log:
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        scrape(metrics_port, timeout=60)
        for _ in range(2):
            status = subprocess.run([os.path.join(args.bin_dir, "mobilenet-ctl"), "status",
                                     "--ps_hosts=" + ps_hosts, "--timeout_secs=10"],
                                    capture_output=True, text=True, timeout=60, env=env)
            check(status.returncode == 0, "mobilenet-ctl status exited %d: %s" %
                  (status.returncode, status.stderr))
        body = scrape(metrics_port, timeout=10)

        promtool_check(promtool, body, "mobilenet-ps")
        for expected in ["mobilenet_ps_global_step 0",
                         'mobilenet_ps_pushes_total{result="applied"} 0',
                         "mobilenet_ps_push_staleness_count 0",
                         "mobilenet_ps_push_apply_seconds_count 0",
                         'grpc_server_handled_total{grpc_code="OK",grpc_method="GetStatus",'
                         'grpc_service="mobilenet.ps.v1.ParameterServer",grpc_type="unary"}']:
            check(expected in body, "/metrics has no %r:\n%s" % (expected, body))

        # A worker on synthetic data, many epochs: it is still training when scraped.
        worker_command = [os.path.join(args.bin_dir, "mobilenet-worker"),
                          "--ps_hosts=" + ps_hosts, "--worker_hosts=127.0.0.1:%d" % worker_port,
                          "--job_name=worker", "--task_index=0", "--synthetic",
                          "--synthetic_examples=640", "--epochs=100000", "--batch_size=32",
                          "--threads=1", "--quiet",
                          "--metrics_address=127.0.0.1:%d" % worker_metrics_port] + SHARED_FLAGS
        with open(worker_log_path, "w") as log:
            worker = subprocess.Popen(worker_command, stdout=log, stderr=subprocess.STDOUT,
                                      env=env)
        deadline = time.time() + 60
        while True:
            body = scrape(worker_metrics_port, timeout=60)
            if "mobilenet_worker_steps_total 0\n" not in body:
                break
            check(time.time() < deadline and worker.poll() is None,
                  "the worker trained no step in 60 s")
            time.sleep(0.5)
        promtool_check(promtool, body, "mobilenet-worker")

        # The training report of the running cluster from its polled Status.
        report_path = os.path.join(run_dir, "live_report.html")
        report = subprocess.run([os.path.join(args.bin_dir, "mobilenet-ctl"), "report",
                                 "--ps_hosts=" + ps_hosts, "--out=" + report_path,
                                 "--poll_secs=1", "--duration_secs=3"],
                                capture_output=True, text=True, timeout=60, env=env)
        check(report.returncode == 0 and "duration_secs=3 reached" in report.stdout,
              "mobilenet-ctl report --ps_hosts exited %d: %s%s" %
              (report.returncode, report.stdout, report.stderr))
        with open(report_path) as f:
            html = f.read()
        for expected in ['id="images-per-second-worker-0"', 'id="staleness-distribution-ps-0"',
                         'id="staleness-p90"', "seconds since the first poll"]:
            check(expected in html, "the live report has no %r" % expected)
        print("mobilenet-ctl report --ps_hosts: %s" % report.stdout.strip().splitlines()[-1])
        for expected in ["mobilenet_worker_examples_total",
                         'mobilenet_worker_step_phase_seconds_count{phase="compute"}',
                         'mobilenet_worker_step_phase_seconds_count{phase="pull_wait"}',
                         'mobilenet_worker_step_phase_seconds_count{phase="push_wait"}']:
            check(expected in body, "worker /metrics has no %r:\n%s" % (expected, body))
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        check(code == 0, "mobilenet-worker exited %d after SIGTERM" % code)

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        check(code == 0, "mobilenet-ps exited %d after SIGTERM" % code)
        ok = True
    except (Failure, subprocess.TimeoutExpired) as e:
        print("FAILED: %s" % e)
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if not ok:
            for path in (log_path, worker_log_path):
                if os.path.exists(path):
                    with open(path) as log:
                        print("---- %s\n%s" % (path, log.read()))
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
