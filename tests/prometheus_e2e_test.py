#!/usr/bin/python3
"""A real Prometheus scrapes a training cluster, loads the alerting rules, and sees through
its HTTP API what the metrics and the rules say it should.

Starts 2 mobilenet-ps and 2 mobilenet-worker (synthetic data, a tiny model, training until
stopped) on loopback, each with --metrics_address, and Debian's `prometheus` with a
generated configuration: the jobs "mobilenet-ps" and "mobilenet-worker" that
deploy/prometheus/rules.yml expects, scraped and evaluated every second, and rules.yml of
the source tree. Then, through /api/v1 (query, targets, rules, alerts):
  - every target is up (up == 1, health "up");
  - each server's mobilenet_ps_global_step and each worker's mobilenet_worker_steps_total
    rise; each server applies pushes (rate of mobilenet_ps_pushes_total{result="applied"});
    each server answered Push and Pull with grpc_code="OK" (grpc_server_handled_total);
  - every rule group of rules.yml is loaded, every rule evaluated with health "ok", and no
    alert is pending or firing: on a healthy cluster a few seconds old none can be (their
    thresholds are minutes of uptime, silence or checkpoint age, a target down, or stale
    pushes refused, which the default --staleness_policy=apply never does);
  - every endpoint's /metrics passes `promtool check metrics`.
Then the faults:
  - worker 1 stopped with SIGTERM exits 0; its target goes down, both servers report it
    not finished (mobilenet_ps_worker_finished 0: a restart resumes it) and stop hearing
    from it (mobilenet_ps_worker_last_seen_age_seconds grows), while worker 0 trains on;
  - worker 0 stopped with SIGTERM exits 0; server 1 killed with SIGKILL: its target goes
    down (up == 0) within a few scrapes, server 0's stays up, and the alert
    MobilenetParameterServerDown is pending for server 1 alone (it fires after 1 minute).
Server 0 and Prometheus, stopped with SIGTERM, exit 0. About 30 s.

Every process started is killed on any way out (failure, exception, SIGTERM from ctest;
prometheus also when this driver is killed outright). On failure the logs (processes' and
Prometheus') are printed and the run folder is kept.

Skipped (exit 77) when prometheus or promtool is not installed and cannot be (Debian's
prometheus package, installed here when running as root; deploy/install_deps.sh --test).

Usage: prometheus_e2e_test.py --bin_dir DIR [--source_dir DIR] [--keep]
Exit 0 when it passes, 1 when it fails, 77 when skipped.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (NUM_PS, NUM_WORKERS, SKIP, Cluster, Failure, check,  # noqa: E402
                        die_with_driver, free_ports)
from metrics_e2e_test import promtool_check, scrape  # noqa: E402

# Synthetic data of 512 examples an epoch (256 per worker, 8 steps of 32), for more epochs
# than it will ever train: the test stops the workers. Steps of this model take a few ms,
# so the workers would take whatever CPU they get; they run niced, as the machine is shared.
SYNTHETIC_EXAMPLES = 512
WORKER_EXTRA = ["--synthetic", "--synthetic_examples=%d" % SYNTHETIC_EXAMPLES,
                "--batch_size=32", "--epochs=100000", "--quiet"]
NICE = ["nice", "-n", "10"]
# The jobs deploy/prometheus/rules.yml's expressions name.
PS_JOB = "mobilenet-ps"
WORKER_JOB = "mobilenet-worker"
# How long rising counters are watched.
PROGRESS_SECS = 5


def find_prometheus():
    """(prometheus, promtool) paths, installing Debian's prometheus package if root may;
    None if either is still missing."""
    paths = [shutil.which("prometheus"), shutil.which("promtool")]
    if None in paths and os.geteuid() == 0 and shutil.which("apt-get"):
        print("prometheus not found: installing Debian's prometheus package", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "prometheus"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        paths = [shutil.which("prometheus"), shutil.which("promtool")]
    return None if None in paths else paths


def write_config(path, cluster, rules_path):
    """A Prometheus configuration scraping every process of `cluster` every second (as
    the jobs rules.yml expects) and evaluating `rules_path` every second."""
    def targets(prefix, count):
        return json.dumps([cluster.metrics_addresses["%s%d" % (prefix, t)] for t in range(count)])
    text = "\n".join([
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        "  - %s" % json.dumps(rules_path),
        "scrape_configs:",
        "  - job_name: %s" % PS_JOB,
        "    static_configs:",
        "      - targets: %s" % targets("ps", NUM_PS),
        "  - job_name: %s" % WORKER_JOB,
        "    static_configs:",
        "      - targets: %s" % targets("worker", NUM_WORKERS),
        ""])
    with open(path, "w") as f:
        f.write(text)


class Prometheus:
    """A prometheus process listening on a free loopback port (nothing else), its TSDB and
    log in `run_dir`, and the parts of its HTTP API the test reads."""

    def __init__(self, binary, run_dir, config_path):
        self.port = free_ports(1)[0]
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(run_dir, "prometheus.log")
        command = [binary, "--config.file=" + config_path,
                   "--storage.tsdb.path=" + os.path.join(run_dir, "tsdb"),
                   "--web.listen-address=127.0.0.1:%d" % self.port]
        with open(self.log_path, "w") as log:
            self.popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=die_with_driver)

    def wait_ready(self, timeout):
        """Waits for /-/ready to answer 200 (configuration loaded, TSDB open)."""
        deadline = time.time() + timeout
        last = None
        while True:
            check(self.popen.poll() is None,
                  "prometheus exited with %s before it was ready (log %s)" %
                  (self.popen.returncode, self.log_path))
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError as e:
                last = e
            check(time.time() < deadline,
                  "prometheus not ready on %s/-/ready after %d s: %s" % (self.url, timeout, last))
            time.sleep(0.2)

    def api(self, path, **params):
        """The `data` of GET /api/v1/<path>?<params>; fails unless its status is "success"."""
        url = "%s/api/v1/%s" % (self.url, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise Failure("GET %s answered %d: %s" % (url, e.code, e.read()[:1000]))
        except OSError as e:
            raise Failure("GET %s: %s" % (url, e))
        check(body.get("status") == "success", "GET %s: %s" % (url, json.dumps(body)[:1000]))
        return body["data"]

    def query(self, expr):
        """An instant query's series: [(labels, value)]."""
        data = self.api("query", query=expr)
        check(data["resultType"] == "vector",
              "query %r returned a %s, not a vector" % (expr, data["resultType"]))
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def by_instance(self, expr):
        """{instance: value} of an instant query whose series differ by instance."""
        series = self.query(expr)
        values = {labels.get("instance"): value for labels, value in series}
        check(len(values) == len(series),
              "query %r returned several series of an instance: %s" % (expr, series))
        return values

    def alerts(self):
        """Every pending or firing alert: [{"labels", "state", ...}]."""
        return self.api("alerts")["alerts"]


class Scenario:
    """The cluster, Prometheus and the names of the processes behind its instances."""

    def __init__(self, cluster, prometheus):
        self.cluster = cluster
        self.prometheus = prometheus
        self.instance = dict(cluster.metrics_addresses)       # "ps1" -> "127.0.0.1:port"
        self.name = {a: n for n, a in self.instance.items()}  # and back

    def describe(self, instance):
        return "%s (%s)" % (self.name.get(instance, "an unknown target"), instance)

    def wait_until(self, what, probe, timeout, poll=0.5):
        """Calls probe() every `poll` seconds (failing if a process the driver did not
        signal exited) until it returns None; it returns what is still wrong otherwise,
        which the failure after `timeout` seconds names."""
        deadline = time.time() + timeout
        while True:
            self.cluster.check_alive()
            problem = probe()
            if problem is None:
                self.cluster.note(what)
                return
            if time.time() > deadline:
                raise Failure("not within %d s: %s; last seen: %s" % (timeout, what, problem))
            time.sleep(poll)

    def check_now(self, what, probe):
        """Fails naming `what` and what probe() says is wrong, unless it returns None."""
        self.cluster.check_alive()
        problem = probe()
        check(problem is None, "expected %s, but: %s" % (what, problem))
        self.cluster.note(what)

    def values(self, expr, names):
        """{name: value} of `expr` for the processes `names`; fails naming any missing."""
        found = self.prometheus.by_instance(expr)
        missing = [self.describe(self.instance[n]) for n in names if self.instance[n] not in found]
        check(not missing, "query %r has no series of %s (it returned %s)" %
              (expr, ", ".join(missing), found))
        return {n: found[self.instance[n]] for n in names}

    def check_rising(self, expr, names, seconds=PROGRESS_SECS):
        """`expr` of every process of `names` is higher `seconds` later."""
        before = self.values(expr, names)
        time.sleep(seconds)
        self.cluster.check_alive()
        after = self.values(expr, names)
        for n in names:
            check(after[n] > before[n], "%s of %s did not rise in %d s: %g, then %g" %
                  (expr, self.describe(self.instance[n]), seconds, before[n], after[n]))
        self.cluster.note("%s rose in %d s: %s" % (expr, seconds, ", ".join(
            "%s %g -> %g" % (n, before[n], after[n]) for n in names)))

    def up_problem(self, expected):
        """What differs from `expected` (name -> 1 up or 0 down) in both the targets API
        and the `up` series, or None."""
        problems = []
        targets = {t["labels"]["instance"]: t
                   for t in self.prometheus.api("targets")["activeTargets"]}
        up = self.prometheus.by_instance("up")
        for n, want in sorted(expected.items()):
            instance = self.instance[n]
            target = targets.get(instance)
            if target is None:
                problems.append("%s is not a target" % self.describe(instance))
                continue
            health = "up" if want else "down"
            if target["health"] != health or up.get(instance) != want:
                problems.append("%s: health %r (last error %r), up %s; expected %r and up %d" %
                                (self.describe(instance), target["health"],
                                 target["lastError"], up.get(instance), health, want))
        return "; ".join(problems) or None

    def alerts_problem(self, expected):
        """What differs between the active alerts and `expected` (a set of (alertname,
        instance, state)), or None."""
        active = {(a["labels"].get("alertname"), a["labels"].get("instance"), a["state"])
                  for a in self.prometheus.alerts()}
        if active == expected:
            return None

        def show(alerts):
            return ", ".join("%s %s for %s" % (name, state, self.describe(instance))
                             for name, instance, state in sorted(alerts)) or "none"
        return "active alerts: %s; expected: %s" % (show(active), show(expected))


def rules_problem(prometheus, rules_path):
    """What is wrong with the rule groups Prometheus loaded, or None when every group and
    rule of `rules_path` is there and every rule has been evaluated with health "ok"."""
    with open(rules_path) as f:
        text = f.read()
    group_names = re.findall(r"^\s*-\s+name:\s*(\S+)", text, re.M)
    rule_count = len(re.findall(r"^\s*-\s+(?:alert|record):", text, re.M))
    groups = prometheus.api("rules")["groups"]
    loaded = {g["name"]: g for g in groups if g["file"] == rules_path}
    missing = [g for g in group_names if g not in loaded]
    if missing:
        return "rule groups %s of %s not loaded (loaded: %s)" % (
            missing, rules_path, [(g["name"], g["file"]) for g in groups])
    rules = [r for g in loaded.values() for r in g["rules"]]
    if len(rules) != rule_count:
        return "%d rules loaded from %s, which has %d" % (len(rules), rules_path, rule_count)
    unhealthy = ["%s: health %r, last error %r" % (r["name"], r["health"], r.get("lastError"))
                 for r in rules if r["health"] != "ok"]
    return "; ".join(unhealthy) or None


def check_stopped_on_request(worker):
    """A worker that exited 0 after SIGTERM says it stopped before finishing its share."""
    check("stopped on request" in worker.log(),
          "%s exited 0 after SIGTERM without saying it stopped on request (log %s)" %
          (worker.name, worker.log_path))


def run(args, promtool, prometheus_binary, cluster):
    rules_path = os.path.join(os.path.abspath(args.source_dir), "deploy", "prometheus",
                              "rules.yml")
    check(os.path.exists(rules_path), "no alerting rules at %s (--source_dir)" % rules_path)
    ps_names = ["ps%d" % t for t in range(NUM_PS)]
    worker_names = ["worker%d" % t for t in range(NUM_WORKERS)]

    cluster.start_all()
    for address in sorted(cluster.metrics_addresses.values()):
        scrape(int(address.rsplit(":", 1)[1]), timeout=60)
    cluster.note("every process serves /metrics")

    config_path = os.path.join(cluster.run_dir, "prometheus.yml")
    write_config(config_path, cluster, rules_path)
    prometheus = args.prometheus = Prometheus(prometheus_binary, cluster.run_dir, config_path)
    prometheus.wait_ready(timeout=60)
    cluster.note("prometheus ready on %s (pid %d)" % (prometheus.url, prometheus.popen.pid))
    scenario = Scenario(cluster, prometheus)

    # The healthy cluster.
    everyone = ps_names + worker_names
    scenario.wait_until("every target up", lambda: scenario.up_problem(dict.fromkeys(everyone, 1)),
                        timeout=20)
    scenario.wait_until("the rules of %s loaded and evaluated, health ok" % rules_path,
                        lambda: rules_problem(prometheus, rules_path), timeout=20)
    scenario.check_rising('mobilenet_ps_global_step{job="%s"}' % PS_JOB, ps_names)
    scenario.check_rising('mobilenet_worker_steps_total{job="%s"}' % WORKER_JOB, worker_names)
    applied = ('sum by (instance) (rate(mobilenet_ps_pushes_total{job="%s",result="applied"}'
               '[15s]))' % PS_JOB)
    for name, rate in scenario.values(applied, ps_names).items():
        check(rate > 0, "%s is %g for %s: it applies no pushes" %
              (applied, rate, scenario.describe(scenario.instance[name])))
    cluster.note("pushes applied per second: %s" % scenario.values(applied, ps_names))
    handled = ('grpc_server_handled_total{job="%s",grpc_method=~"Push|Pull",grpc_code="OK"}'
               % PS_JOB)
    answered = {(labels["instance"], labels["grpc_method"]): value
                for labels, value in prometheus.query(handled)}
    for name in ps_names:
        for method in ("Push", "Pull"):
            value = answered.get((scenario.instance[name], method), 0)
            check(value > 0, "%s has no %s calls answered OK (%s: %s)" %
                  (scenario.describe(scenario.instance[name]), method, handled, answered))
    scenario.check_now("no alert pending or firing on the healthy cluster",
                       lambda: scenario.alerts_problem(set()))
    for name in everyone:
        body = scrape(int(scenario.instance[name].rsplit(":", 1)[1]), timeout=10)
        promtool_check(promtool, body, "%s's /metrics" % name)

    # Worker 1 stopped: not finished, silent, and worker 0 trains on.
    cluster.signal(cluster.workers[1], signal.SIGTERM)
    cluster.wait_exit(cluster.workers[1], 60, "worker 1 (SIGTERM)")
    check_stopped_on_request(cluster.workers[1])
    scenario.wait_until("worker 1's target down, the others up", lambda: scenario.up_problem(
        {"ps0": 1, "ps1": 1, "worker0": 1, "worker1": 0}), timeout=15)

    def worker1_seen():
        finished = scenario.values('mobilenet_ps_worker_finished{worker="1"}', ps_names)
        age = scenario.values('mobilenet_ps_worker_last_seen_age_seconds{worker="1"}', ps_names)
        wrong = ["%s: finished %g, last seen %.1f s ago" % (n, finished[n], age[n])
                 for n in ps_names if finished[n] != 0 or age[n] < 2]
        return "; ".join(wrong) or None
    scenario.wait_until("both servers report worker 1 silent for 2 s and not finished",
                        worker1_seen, timeout=15)
    scenario.check_rising('mobilenet_worker_steps_total{job="%s"}' % WORKER_JOB, ["worker0"])
    scenario.check_rising('mobilenet_ps_global_step{job="%s"}' % PS_JOB, ps_names, seconds=3)
    scenario.check_now("still no alert pending or firing",
                       lambda: scenario.alerts_problem(set()))
    cluster.signal(cluster.workers[0], signal.SIGTERM)
    cluster.wait_exit(cluster.workers[0], 60, "worker 0 (SIGTERM)")
    check_stopped_on_request(cluster.workers[0])

    # Server 1 killed: down, and its alert pending.
    cluster.kill(cluster.ps[1])
    scenario.wait_until("ps1's target down within a few scrapes, ps0's up",
                        lambda: scenario.up_problem({"ps0": 1, "ps1": 0}), timeout=10)
    down = {("MobilenetParameterServerDown", scenario.instance["ps1"], "pending")}
    scenario.wait_until("MobilenetParameterServerDown pending for ps1 alone, nothing firing",
                        lambda: scenario.alerts_problem(down), timeout=10)

    cluster.signal(cluster.ps[0], signal.SIGTERM)
    cluster.wait_exit(cluster.ps[0], 60, "ps 0 (SIGTERM)")
    prometheus.popen.send_signal(signal.SIGTERM)
    try:
        code = prometheus.popen.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise Failure("prometheus still running 60 s after SIGTERM")
    check(code == 0, "prometheus exited %d after SIGTERM (log %s)" % (code, prometheus.log_path))
    cluster.note("ps 0 and prometheus exited 0 on SIGTERM")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--source_dir", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), help="the source tree (its deploy/prometheus/rules.yml "
        "is loaded; default: this script's)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    found = find_prometheus()
    if found is None:
        print("SKIPPED: prometheus or promtool is not installed (Debian's prometheus package)")
        return SKIP
    prometheus_binary, promtool = found
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))
    run_dir = tempfile.mkdtemp(prefix="prometheus_e2e_")
    print("run folder %s" % run_dir, flush=True)
    start = time.time()
    args.prometheus = None
    cluster = None
    ok = False
    try:
        cluster = Cluster(args.bin_dir, run_dir, metrics=True, worker_extra=WORKER_EXTRA,
                          worker_prefix={t: NICE for t in range(NUM_WORKERS)},
                          die_with_driver=True)
        run(args, promtool, prometheus_binary, cluster)
        ok = True
    except Failure as e:
        print("FAILED: %s" % e)
    except Exception:
        import traceback
        traceback.print_exc()
    finally:
        # A second SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args.prometheus is not None and args.prometheus.popen.poll() is None:
            args.prometheus.popen.kill()
            args.prometheus.popen.wait()
        if cluster is not None:
            cluster.stop_everything()
            if not ok:
                cluster.dump_logs(lines=60)
        if ok and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif not ok:
            print("run folder kept: %s" % run_dir)
    print("%s in %.0f s" % ("PASSED" if ok else "FAILED", time.time() - start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
