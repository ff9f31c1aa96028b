"""What the end-to-end test scripts share: a failure that ends a scenario with a message,
the check that raises it, and free ports; and, for the cluster tests
(cluster_e2e_test.py, fault_injection_test.py), the training configuration they all run,
a local cluster of real mobilenet-ps and mobilenet-worker processes, the undisturbed
baseline run they compare with, and their command line."""

import argparse
import ctypes
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Failure(Exception):
    """A scenario failed; the message says what was expected and what happened."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_ports(count):
    """Ports nothing listens on right now (bound and released)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def die_with_driver():
    """A Popen preexec_fn: the kernel sends the child SIGKILL when the driver that started
    it dies, however it dies (SIGKILL included), so that none outlives a test."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL))


# ---------------------------------------------------------------------------------------
# The training configuration of every cluster scenario: 2 PS + 2 workers, a small model,
# 10 epochs of each worker's shard (10 epochs of Fashion-MNIST in all), the learning rate
# 0.045 for two epochs and then 0.4 times that every two (0.0012 in the last two), so that
# the final test accuracy has plateaued: 35-60 s on 2 busy cores. It still varies from run
# to run, as the workers' updates interleave differently: over 24 undisturbed runs 85.0% to
# 87.0%, standard deviation 0.55 points (and as much in the disturbed ones). Other learning
# rates, schedules, batch sizes, widths, longer training and in-turn communication all
# varied as much or more. Two runs then differ by more than the 2-point tolerance about 1%
# of the time.

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SKIP = 77
NUM_PS = 2
NUM_WORKERS = 2
BATCH = 64
EPOCHS = 10                 # of each worker's shard
SHARD_EXAMPLES = 60000 // NUM_WORKERS
TEST_EXAMPLES = 10000
# Model, optimizer and schedule: mobilenet-ps and mobilenet-worker take the same.
SHARED_FLAGS = ["--alpha=0.25", "--resolution=28", "--learning_rate=0.045",
                "--lr_decay_factor=0.4", "--epochs_per_decay=2"]
# Short checkpoint interval: a PS killed at any time has a recent checkpoint to restore.
PS_FLAGS = ["--log_every_secs=5", "--checkpoint_every_secs=2", "--keep_checkpoints=3"]
# One compute thread per worker (2 cores, 4 processes); the final evaluation takes the
# whole test set; a worker cut off for 20 s (plus TCP's retransmission backoff) is still
# waited for by the chief (--worker_liveness_secs).
WORKER_FLAGS = ["--threads=1", "--batch_size=%d" % BATCH, "--epochs=%g" % EPOCHS,
                "--eval_every_epochs=0", "--eval_examples=0", "--rpc_timeout_secs=10",
                "--ps_patience_secs=120", "--worker_liveness_secs=60",
                "--wait_for_workers_secs=300"]
# Final accuracies of a disturbed run and the baseline may differ by at most this many
# percentage points (the bar).
ACCURACY_TOLERANCE_POINTS = 2.0


def share_examples():
    """The examples one worker trains: its share (EPOCHS of its shard) rounded up to whole
    batches (a step is always a full batch; the data wraps around the shard)."""
    share = round(EPOCHS * SHARD_EXAMPLES)
    return int(math.ceil(share / BATCH)) * BATCH


def share_pushes():
    return share_examples() // BATCH


def configuration():
    """What a baseline must have been run with to be compared with."""
    return {"shared": SHARED_FLAGS, "ps": PS_FLAGS, "worker": WORKER_FLAGS,
            "num_ps": NUM_PS, "num_workers": NUM_WORKERS}


def check_flag_known(bin_dir, flag, feature):
    """mobilenet-ps and mobilenet-worker in `bin_dir` know `flag`: a clear failure naming
    `feature` rather than a flag error from the first process started."""
    for binary in ("mobilenet-ps", "mobilenet-worker"):
        out = subprocess.run([os.path.join(bin_dir, binary), "--helpfull"], capture_output=True,
                             text=True, timeout=60)
        check(flag in out.stdout + out.stderr, "%s in %s has no %s flag (built before %s?)" %
              (binary, bin_dir, flag, feature))


def listen_flags(address):
    """The flags that make a PS listen on `address` (host:port). mobilenet-ps refuses a
    non-loopback address without transport security; these suites test the training, not
    the transport (tests/security_e2e_test.py does), so they opt in to plaintext there."""
    host = address.rsplit(":", 1)[0].strip("[]")
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return ["--bind_address=" + address] + ([] if loopback else ["--insecure"])


# ---------------------------------------------------------------------------------------
# Logs.

ACCURACY = re.compile(r"Test accuracy: ([0-9.]+)% \((\d+)/(\d+)\), test loss ([0-9.]+) at "
                      r"global step (\d+)")
EARLIER_RUN = re.compile(r"\((\d+) examples in (\d+) steps were pushed by an earlier run\)")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def final_evaluation(log_path):
    """The chief's final evaluation: {"accuracy" (percent), "correct", "examples",
    "loss", "global_step"}."""
    match = ACCURACY.search(read(log_path))
    check(match is not None, "no final 'Test accuracy: ...' line in %s" % log_path)
    result = {"accuracy": float(match.group(1)), "correct": int(match.group(2)),
              "examples": int(match.group(3)), "loss": float(match.group(4)),
              "global_step": int(match.group(5))}
    check(result["examples"] == TEST_EXAMPLES,
          "the chief evaluated %d test examples; expected the whole test set (%d)" %
          (result["examples"], TEST_EXAMPLES))
    return result


def earlier_run(log_path):
    """(examples, steps) a restarted worker says an earlier run pushed, or None."""
    match = EARLIER_RUN.search(read(log_path))
    return None if match is None else (int(match.group(1)), int(match.group(2)))


# ---------------------------------------------------------------------------------------
# Status.

def server(status, task):
    """Task `task`'s entry of a status (ok False when it did not answer)."""
    return status["parameter_servers"][task]


def answering(status, task):
    return server(status, task).get("ok", False)


def ledger_row(server_status, worker_id):
    """A server's ledger row of `worker_id` (pushes, steps, finished, ...)."""
    for row in server_status["workers"]:
        if row["worker_id"] == worker_id:
            return row
    raise Failure("ps %s has no ledger row for worker %d: %s" %
                  (server_status.get("shard_index"), worker_id, server_status["workers"]))


def merged_row(status, worker_id):
    """The summary's row of `worker_id` (merged over the servers), or {}."""
    for row in status["workers"]:
        if row["worker_id"] == worker_id:
            return row
    return {}


def server_examples(row):
    """Examples of a server's ledger row (the examples of the pushes it applied)."""
    return row["examples"]


def pushes(status, worker_id):
    """Pushes of `worker_id` the servers applied (the largest count of those answering)."""
    return merged_row(status, worker_id).get("pushes", 0)


# ---------------------------------------------------------------------------------------
# A local cluster.

class Process:
    """One run of a binary: its Popen, log and what the driver did to it."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.started = time.time()
        self.signalled = None  # the signal the driver sent, if any

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        self.signalled = sig
        self.popen.send_signal(sig)

    def log(self):
        return read(self.log_path)


class Cluster:
    """The processes of one local cluster (NUM_PS servers, NUM_WORKERS workers) running
    the configuration above, their logs and checkpoints in `run_dir`. Every status the
    driver takes is kept: `last_answer[task]` is each server's latest answer. With
    `metrics`, every process serves Prometheus metrics on a loopback port of its own
    (--metrics_address), kept across restarts: `metrics_addresses[name]` ("ps0",
    "worker1", ...). With `die_with_driver`, every process is killed when the driver dies.
    `num_workers` other than NUM_WORKERS changes only the processes started and the
    --worker_hosts list (the share and ledger checks below assume NUM_WORKERS).
    """

    def __init__(self, bin_dir, run_dir, ps_host="127.0.0.1", worker_prefix=None,
                 ps_extra=(), worker_extra=(), metrics=False, die_with_driver=False,
                 num_workers=NUM_WORKERS):
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.num_workers = num_workers
        names = ["ps%d" % t for t in range(NUM_PS)] + ["worker%d" % t for t in range(num_workers)]
        ports = free_ports(NUM_PS + num_workers + (len(names) if metrics else 0))
        self.metrics_addresses = {name: "127.0.0.1:%d" % port
                                  for name, port in zip(names, ports[NUM_PS + num_workers:])}
        self.ps_addresses = ["%s:%d" % (ps_host, p) for p in ports[:NUM_PS]]
        self.ps_hosts = ",".join(self.ps_addresses)
        # Workers listen on nothing: only the number of entries counts.
        self.worker_hosts = ",".join("127.0.0.1:%d" % p for p in ports[NUM_PS:NUM_PS + num_workers])
        self.checkpoint_dir = os.path.join(run_dir, "checkpoints")
        self.onnx = os.path.join(run_dir, "model.onnx")
        self.worker_prefix = dict(worker_prefix or {})  # task -> command prefix
        self.ps_extra = list(ps_extra)
        self.worker_extra = list(worker_extra)
        self.die_with_driver = die_with_driver
        self.ps = {}        # task -> its current Process
        self.workers = {}   # task -> its current Process
        self.history = []   # every Process started, in order
        self.last_answer = {}
        self.begin = time.time()

    # Processes.

    def _start(self, name, command):
        runs = sum(1 for p in self.history if p.name == name)
        log_path = os.path.join(self.run_dir, "%s%s.log" % (
            name, "" if runs == 0 else ".run%d" % (runs + 1)))
        with open(log_path, "w") as log:
            popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env(),
                                     preexec_fn=die_with_driver if self.die_with_driver else None)
        process = Process(name, popen, log_path)
        self.history.append(process)
        return process

    @staticmethod
    def env():
        env = dict(os.environ)
        env.pop("MOBILENET_CLUSTER", None)
        return env

    def binary(self, name):
        return os.path.join(self.bin_dir, name)

    def cluster_flags(self, job, task, ps_hosts=None):
        return ["--ps_hosts=" + (ps_hosts or self.ps_hosts), "--worker_hosts=" + self.worker_hosts,
                "--job_name=" + job, "--task_index=%d" % task]

    def metrics_flags(self, name):
        address = self.metrics_addresses.get(name)
        return [] if address is None else ["--metrics_address=" + address]

    def start_ps(self, task):
        self.ps[task] = self._start(
            "ps%d" % task,
            [self.binary("mobilenet-ps")] + self.cluster_flags("ps", task) + SHARED_FLAGS +
            PS_FLAGS + listen_flags(self.ps_addresses[task]) +
            ["--checkpoint_dir=" + self.checkpoint_dir] + self.metrics_flags("ps%d" % task) +
            self.ps_extra)
        self.note("started ps %d (pid %d)" % (task, self.ps[task].popen.pid))
        return self.ps[task]

    def start_worker(self, task):
        extra = ["--export_onnx=" + self.onnx] if task == 0 else []
        self.workers[task] = self._start(
            "worker%d" % task,
            self.worker_prefix.get(task, []) + [self.binary("mobilenet-worker")] +
            self.cluster_flags("worker", task) + SHARED_FLAGS + WORKER_FLAGS + extra +
            self.metrics_flags("worker%d" % task) + self.worker_extra)
        self.note("started worker %d (pid %d)" % (task, self.workers[task].popen.pid))
        return self.workers[task]

    def start_all(self):
        for task in range(NUM_PS):
            self.start_ps(task)
        for task in range(self.num_workers):
            self.start_worker(task)

    def signal(self, process, sig):
        process.signal(sig)
        self.note("sent %s to %s (pid %d)" % (signal.Signals(sig).name, process.name,
                                               process.popen.pid))

    def kill(self, process):
        """SIGKILL, and wait for it to be gone."""
        self.signal(process, signal.SIGKILL)
        try:
            process.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("%s still there 30 s after SIGKILL" % process.name)

    def note(self, line):
        print("[%6.1fs] %s" % (time.time() - self.begin, line), flush=True)

    def check_alive(self):
        """Fails when a process the driver did not signal has exited other than with 0,
        or a worker or server exited before the training ended."""
        for process in self.current():
            code = process.popen.poll()
            if code is None or process.signalled is not None:
                continue
            check(code == 0, "%s exited with %d (log %s)" % (process.name, code,
                                                              process.log_path))

    def current(self):
        return list(self.ps.values()) + list(self.workers.values())

    # Status.

    def status(self):
        """`mobilenet-ctl status --json` (it exits 1, still printing the JSON, when no
        server answers); remembers each server's answer."""
        command = [self.binary("mobilenet-ctl"), "status", "--ps_hosts=" + self.ps_hosts,
                   "--json", "--timeout_secs=3"]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                 env=self.env())
        except subprocess.TimeoutExpired:
            raise Failure("mobilenet-ctl status --timeout_secs=3 still running after 60 s")
        try:
            status = json.loads(out.stdout)
        except ValueError:
            raise Failure("mobilenet-ctl status printed no JSON (exit %d): %s" %
                          (out.returncode, out.stderr))
        count = status["summary"]["servers_answering"]
        check((out.returncode == 0) == (count > 0),
              "mobilenet-ctl status exited %d with %d servers answering" %
              (out.returncode, count))
        for task in range(NUM_PS):
            if answering(status, task):
                self.last_answer[task] = server(status, task)
        return status

    def wait_for(self, what, predicate, timeout, poll=0.25):
        """Polls status (failing if a process died) until predicate(status); returns that
        status."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            self.check_alive()
            last = self.status()
            if predicate(last):
                return last
            time.sleep(poll)
        raise Failure("timed out after %ds waiting for %s; last status: %s" %
                      (timeout, what, json.dumps(last)[:3000]))

    def idle(self, seconds, poll=0.5):
        """Waits `seconds`, polling status (and failing if a process died) meanwhile;
        returns the statuses taken as (seconds since the call, status)."""
        taken = []
        begin = time.time()
        while time.time() < begin + seconds:
            self.check_alive()
            taken.append((time.time() - begin, self.status()))
            time.sleep(max(0, min(poll, begin + seconds - time.time())))
        return taken

    def wait_exit(self, process, timeout, what, expect=0):
        try:
            code = process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("%s still running after %ds (log %s)" % (what, timeout,
                                                                   process.log_path))
        check(code == expect, "%s exited with %d, expected %d (log %s)" %
              (what, code, expect, process.log_path))

    def finish(self, timeout):
        """Waits (polling status, so that each server's last answer is kept) for every
        worker to exit 0 and then every server, which exit 0 once the chief ends the
        training. Then checks that every process the driver did not signal exited 0."""
        deadline = time.time() + timeout
        while any(p.alive() for p in self.workers.values()) and time.time() < deadline:
            self.check_alive()
            self.status()
            time.sleep(0.25)
        for task, process in sorted(self.workers.items()):
            self.wait_exit(process, max(1, deadline - time.time()), "worker %d" % task)
        self.note("every worker exited 0")
        for task, process in sorted(self.ps.items()):
            self.wait_exit(process, 60, "ps %d (after the chief ended the training)" % task)
        self.note("every parameter server exited 0")
        for process in self.history:
            if process.signalled is None:
                check(process.popen.returncode == 0,
                      "%s exited with %s (log %s)" % (process.name, process.popen.returncode,
                                                      process.log_path))

    def final_ledger(self):
        """The servers' final state as their final checkpoints hold it: every server is
        started once more on the checkpoint folder (fresh ports, serving the restored
        weights without training: --exit_after_training=false), asked for its status and
        stopped with SIGTERM (exit 0). Returns the status: per server the ledger rows
        (pushes, steps, finished of every worker) and global step; the summary's workers
        merge the servers' rows (examples included)."""
        addresses = ["127.0.0.1:%d" % p for p in free_ports(NUM_PS)]
        readers = []
        for task in range(NUM_PS):
            readers.append(self._start(
                "ledger_ps%d" % task,
                [self.binary("mobilenet-ps")] + self.cluster_flags("ps", task, ",".join(addresses))
                + SHARED_FLAGS + PS_FLAGS + ["--exit_after_training=false",
                                             "--checkpoint_dir=" + self.checkpoint_dir]))
        try:
            deadline = time.time() + 60
            while True:
                out = subprocess.run(
                    [self.binary("mobilenet-ctl"), "status", "--ps_hosts=" + ",".join(addresses),
                     "--json", "--timeout_secs=3"], capture_output=True, text=True, timeout=60,
                    env=self.env())
                if out.returncode == 0:
                    status = json.loads(out.stdout)
                    if status["summary"]["servers_answering"] == NUM_PS:
                        break
                check(time.time() < deadline and all(r.alive() for r in readers),
                      "the servers restarted on the final checkpoints did not answer within "
                      "60 s: %s" % out.stdout[-2000:])
                time.sleep(0.3)
        finally:
            for reader in readers:
                if reader.alive():
                    reader.signal(signal.SIGTERM)
        for reader in readers:
            self.wait_exit(reader, 60, "%s (SIGTERM)" % reader.name)
        for task in range(NUM_PS):
            check("restored " in readers[task].log(),
                  "ps %d restarted on the final checkpoints restored none:\n%s" %
                  (task, readers[task].log()[-2000:]))
        return status

    def stop_everything(self):
        for process in self.history:
            if process.alive():
                process.popen.kill()
                process.popen.wait()

    def dump_logs(self, lines=30):
        for name in sorted(os.listdir(self.run_dir)):
            if name.endswith(".log"):
                text = read(os.path.join(self.run_dir, name)).splitlines()
                print("---- %s (last %d lines)" % (name, lines))
                for line in text[-lines:]:
                    print("    " + line[-300:])


# ---------------------------------------------------------------------------------------
# Outcome checks every training scenario shares.

def check_ledger(ledger, killed=None, exact_servers=True):
    """Every worker trained exactly its share: the servers' final ledgers (from their
    final checkpoints) hold share_examples() for it, merged over the servers.
    Per server a worker's count may lack one push per SIGKILL of that worker (`killed`:
    worker id -> kills): the push in flight when it died may have reached only some
    servers, and the restarted worker resumes after the furthest server's count, so that
    batch is not trained again (a step whose push reached no server is). With
    `exact_servers` False (a server
    restored an older checkpoint or refused pushes) only the merged count is exact and a
    server's may be lower. (The finished flags are the train scenario's check.)"""
    killed = killed or {}
    expected = share_examples()
    for worker_id in range(NUM_WORKERS):
        row = merged_row(ledger, worker_id)
        check(row.get("examples") == expected,
              "worker %d: %s examples in the final ledger (merged over the servers); its "
              "share is %d (%d epochs of %d examples, in whole batches of %d)" %
              (worker_id, row.get("examples"), expected, EPOCHS, SHARD_EXAMPLES, BATCH))
        for task in range(NUM_PS):
            got = server_examples(ledger_row(server(ledger, task), worker_id))
            low = expected - BATCH * killed.get(worker_id, 0) if exact_servers else 0
            check(low <= got <= expected,
                  "ps %d applied %d examples of worker %d; expected %s%d" %
                  (task, got, worker_id, "" if low == expected else "%d to " % low, expected))
    print("final ledger: every worker trained %d examples; pushes per server %s" %
          (expected, [[ledger_row(server(ledger, t), w)["pushes"] for w in range(NUM_WORKERS)]
                      for t in range(NUM_PS)]))


def check_accuracy(evaluation, baseline, tolerance=ACCURACY_TOLERANCE_POINTS):
    """The chief's final accuracy is within `tolerance` points of the baseline's."""
    difference = evaluation["accuracy"] - baseline["accuracy"]
    print("final accuracy %.2f%% (baseline %.2f%%, difference %+.2f points, allowed %.1f)" %
          (evaluation["accuracy"], baseline["accuracy"], difference, tolerance))
    check(abs(difference) <= tolerance,
          "final accuracy %.2f%% is %.2f points from the undisturbed baseline's %.2f%%; "
          "at most %.1f allowed" % (evaluation["accuracy"], abs(difference),
                                    baseline["accuracy"], tolerance))


def check_final_step(evaluation, ledger):
    """The chief evaluated the final weights: its evaluation's global step is the servers'
    final step (so it waited for every worker's last push)."""
    final_step = ledger["summary"]["global_step"]
    check(evaluation["global_step"] == final_step,
          "the chief's final evaluation is of global step %d, but the servers ended at %d: "
          "pushes landed after it evaluated" % (evaluation["global_step"], final_step))


# ---------------------------------------------------------------------------------------
# The undisturbed baseline.

def read_baseline(path):
    check(path is not None, "this scenario compares with the baseline: pass --baseline "
          "FILE written by `cluster_e2e_test.py --scenario baseline --baseline FILE`")
    check(os.path.exists(path), "no baseline at %s: run `cluster_e2e_test.py --scenario "
          "baseline --baseline %s` first (ctest runs it as the cluster_e2e_baseline fixture)"
          % (path, path))
    with open(path) as f:
        baseline = json.load(f)
    check(baseline.get("configuration") == configuration(),
          "the baseline in %s was run with another configuration (%s); run the baseline "
          "scenario again" % (path, baseline.get("configuration")))
    print("baseline: accuracy %.2f%%, training took %.0f s (%s)" %
          (baseline["accuracy"], baseline["wall_seconds"], path))
    return baseline


def write_baseline(path, evaluation, wall_seconds):
    baseline = dict(evaluation, wall_seconds=wall_seconds, configuration=configuration(),
                    written=time.time())
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(baseline, f, indent=1)
    os.replace(tmp, path)
    print("baseline written to %s: %s" % (path, json.dumps(evaluation)))


def training_timeout(baseline, extra=0):
    """How long a scenario's training may take before it counts as hung: three times the
    baseline's, at least two minutes, plus what the scenario adds (downtime)."""
    return max(120, 3 * baseline["wall_seconds"]) + extra


# ---------------------------------------------------------------------------------------
# Command line.

def run_main(doc, scenarios, needs_data=True):
    """Parses --bin_dir --scenario [--baseline] [--seed] [--keep] and runs the scenario:
    scenarios[name](context) with context an argparse namespace holding bin_dir, baseline
    (path), rng (random.Random seeded by --seed, printed), run_dir and the `cluster` it
    set up (stopped and its logs dumped on failure). Returns the exit code: 0 passed,
    1 failed, SKIP (77) skipped."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--scenario", required=True, choices=sorted(scenarios))
    parser.add_argument("--baseline", help="JSON file of the undisturbed run (written by "
                        "the baseline scenario, read by the others)")
    parser.add_argument("--seed", type=int, help="seed of the random times and choices "
                        "(default: a new one, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    if callable(needs_data):
        needs_data = needs_data(args.scenario)
    if needs_data:
        if not os.path.exists(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz")):
            print("Fashion-MNIST not found in %s (Debian package dataset-fashion-mnist); "
                  "skipping" % DATA_DIR)
            return SKIP
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    args.rng = random.Random(args.seed)
    args.run_dir = tempfile.mkdtemp(prefix="%s_%s_" % (
        os.path.splitext(os.path.basename(sys.argv[0]))[0], args.scenario))
    args.cluster = None
    print("scenario %s, seed %d (repeat with --seed %d), run folder %s" %
          (args.scenario, args.seed, args.seed, args.run_dir), flush=True)
    start = time.time()
    outcome = "FAILED"
    try:
        code = scenarios[args.scenario](args)
        outcome = "SKIPPED" if code == SKIP else "PASSED"
    except Failure as e:
        print("FAILED: %s" % e)
    except Exception:
        import traceback
        traceback.print_exc()
    finally:
        if args.cluster is not None:
            args.cluster.stop_everything()
            if outcome == "FAILED":
                args.cluster.dump_logs()
        if outcome != "FAILED" and not args.keep:
            shutil.rmtree(args.run_dir, ignore_errors=True)
    print("%s in %.0fs (seed %d)" % (outcome, time.time() - start, args.seed))
    return {"PASSED": 0, "SKIPPED": SKIP}.get(outcome, 1)
