#!/usr/bin/python3
"""Wire formats behind a slow link: time to accuracy and images/s of each gradient format.

For each --formats entry (fp32, bf16, fp16: the workers' --wire_dtype, used for the
gradient pushes and, unless --pull_dtype says otherwise, for the training pulls), the
default Fashion-MNIST job of deploy/run_local.sh on 2 parameter servers + 2 workers with
1 compute thread each, and what it took:

  - images/s: both workers' trained examples divided by the wall time of the slower
    one's training (each worker reports its own, from its first step to its last, the
    chief's evaluations during training included; as distributed_overhead.py does);
  - bytes per worker step (pull + push): measured from the parameter servers' protocol
    message counters (bytes_in + bytes_out of `mobilenet-ctl status --json`, summed over
    the servers, divided by both workers' steps; this includes the chief's float32
    evaluation pulls and the status calls, a fraction of a percent of a real run), and
    computed from the model's size as a cross-check (parameters x the pull format's bytes
    + parameters x the push format's bytes + the float32 batch statistics a push carries;
    the parameter and state bytes come from the same status);
  - time to --target % test accuracy: the chief (worker 0) evaluates every epoch of its
    shard (--eval_every_epochs=1, i.e. every 60000 examples of both workers) and at the
    end; its stdout is read live and every evaluation line is timestamped relative to the
    workers' start. The first one reaching
    the target counts, separately for the raw weights ("test accuracy") and for the weight
    average ("weight average: test accuracy"), which the default job keeps
    (--weight_ema_decay) and exports;
  - the final accuracy (raw and weight average) of the chief's last evaluation.

The job's flags are those `deploy/run_local.sh --dry_run` prints for the default preset,
with --epochs=E (the cosine schedule follows: --lr_cosine_epochs=E), --eval_every_epochs
(default 1) and --threads=1 given to it; plaintext gRPC (the servers get --insecure when
they listen beyond loopback, which is fine in these private namespaces).

--link_mbit R (root only) puts EACH parameter server in its own network namespace behind
its own veth pair, both ends shaped to R Mbit/s with tc tbf (this kernel has no netem, so
no added latency); the workers stay in the root namespace, so each worker reaches each
server over that server's link, as with two server machines on a switch. 0: loopback,
no namespaces. Namespaces and interfaces are named mobilenet-ttacc-* / mtta-* (distinct
from distributed_overhead.py's) and removed on every exit, Ctrl-C included.

--synthetic measures the issue's other figure instead: images/s (and bytes per step) of
a synthetic-data model, by default the 1.0 MobileNet-224 (--alpha 1 --resolution 224
--channels 3 --classes 1000), --synthetic_examples examples in all (split between the
workers), with the binaries' default optimizer; no accuracy.

  /usr/bin/python3 tests/benchmarks/wire_time_to_accuracy.py [--bin_dir build/bin]
      [--link_mbit 1000] [--formats fp32,bf16,fp16] [--pull_dtype fp32] [--epochs 5]
      [--target 90] [--eval_every_epochs 1] [--repeats 1] [--json]
  /usr/bin/python3 tests/benchmarks/wire_time_to_accuracy.py --synthetic --link_mbit 1000
      [--alpha 1 --resolution 224 --channels 3 --classes 1000 --synthetic_examples 1024
       --batch 32]

Runs cycle through the formats (fp32, bf16, fp16, fp32, ...) --repeats times; the table at
the end has each format's medians and their ratios against fp32 (time to target, images/s)
and the final accuracy's difference from fp32 in points.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_PS = 2
NUM_WORKERS = 2
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

TRAINED = re.compile(r"Worker (\d+) trained (\d+) steps \((\d+) examples\) in \S+, "
                     r"([0-9.]+) images/s")
# The chief's evaluation during training (worker/trainer.cc), then its final one
# (worker/worker_main.cc): the raw weights' line and, with a weight average, its line.
EVALUATION = re.compile(r"epoch ([0-9.]+)  global step (\d+)  test accuracy ([0-9.]+)%"
                        r"(?:.*weight average: test accuracy ([0-9.]+)%)?")
FINAL = re.compile(r"^Test accuracy: ([0-9.]+)% \(\d+/\d+\)")
FINAL_AVERAGE = re.compile(r"^Weight average: test accuracy ([0-9.]+)%")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def die_with_driver():
    """A Popen preexec_fn: the child gets SIGKILL when this script dies, however it dies."""
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Shaped links: server i lives in namespace NETNS[i], at PS_IP[i] on the veth end
# PS_DEV[i]; its other end HOST_DEV[i] (HOST_IP[i]) stays here.

NETNS = [f"mobilenet-ttacc-ps{i}" for i in range(NUM_PS)]
HOST_DEV = [f"mtta-host{i}" for i in range(NUM_PS)]
PS_DEV = [f"mtta-ps{i}" for i in range(NUM_PS)]
HOST_IP = [f"10.213.48.{4 * i + 1}" for i in range(NUM_PS)]
PS_IP = [f"10.213.48.{4 * i + 2}" for i in range(NUM_PS)]


def run(*command):
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {out.stderr.strip()}")


def shaped_links_up(mbit):
    """One namespace per server, each behind a veth pair whose two ends send at most
    `mbit` Mbit/s. tbf's bucket holds 10 ms at the rate but at least 128 KiB, so that a
    64 KiB segmentation-offload packet always fits (tbf drops what exceeds its bucket)."""
    shaped_links_down()
    burst = max(int(mbit * 1e6 / 8 * 0.010), 128 * 1024)
    shape = ["root", "tbf", "rate", f"{mbit:g}mbit", "burst", str(burst), "latency", "200ms"]
    for i in range(NUM_PS):
        ns = ["ip", "netns", "exec", NETNS[i]]
        run("ip", "netns", "add", NETNS[i])
        run("ip", "link", "add", HOST_DEV[i], "type", "veth", "peer", "name", PS_DEV[i])
        run("ip", "link", "set", PS_DEV[i], "netns", NETNS[i])
        run("ip", "addr", "add", f"{HOST_IP[i]}/30", "dev", HOST_DEV[i])
        run("ip", "link", "set", HOST_DEV[i], "up")
        run(*ns, "ip", "addr", "add", f"{PS_IP[i]}/30", "dev", PS_DEV[i])
        run(*ns, "ip", "link", "set", PS_DEV[i], "up")
        run(*ns, "ip", "link", "set", "lo", "up")
        run("tc", "qdisc", "add", "dev", HOST_DEV[i], *shape)
        run(*ns, "tc", "qdisc", "add", "dev", PS_DEV[i], *shape)


def shaped_links_down():
    for i in range(NUM_PS):
        subprocess.run(["ip", "link", "del", HOST_DEV[i]], capture_output=True)
        subprocess.run(["ip", "netns", "del", NETNS[i]], capture_output=True)


# ---------------------------------------------------------------------------------------
# The job's flags.

def dedupe(flags):
    """Flags with each --name kept once, at its last value (absl's last one wins anyway)."""
    last = {}
    for i, f in enumerate(flags):
        last[f.split("=", 1)[0]] = i
    return [f for i, f in enumerate(flags) if last[f.split("=", 1)[0]] == i]


def default_job_flags(a):
    """(ps flags, worker flags) of run_local.sh's default preset for this run, as its
    --dry_run prints them."""
    out = subprocess.run(
        [os.path.join(ROOT, "deploy", "run_local.sh"), "--dry_run", f"--epochs={a.epochs:g}",
         f"--eval_every_epochs={a.eval_every_epochs:g}", "--threads=1"],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"deploy/run_local.sh --dry_run failed:\n{out.stderr}")
    ps = re.search(r"^parameter servers \(\d+\):(.*)$", out.stdout, re.M)
    workers = re.search(r"^workers \(\d+\):(.*)$", out.stdout, re.M)
    if not ps or not workers:
        sys.exit(f"unexpected deploy/run_local.sh --dry_run output:\n{out.stdout}")
    return dedupe(ps.group(1).split()), dedupe(workers.group(1).split())


def synthetic_job_flags(a):
    model = [f"--alpha={a.alpha:g}", f"--resolution={a.resolution}", f"--channels={a.channels}"]
    ps = model + [f"--classes={a.classes}", f"--examples_per_epoch={a.synthetic_examples}"]
    workers = model + ["--synthetic", f"--synthetic_classes={a.classes}",
                       f"--synthetic_examples={a.synthetic_examples}",
                       "--epochs=1", f"--batch_size={a.batch}", "--threads=1",
                       "--eval_every_epochs=0"]
    return ps, workers


# ---------------------------------------------------------------------------------------
# One run of the cluster.

class Output:
    """A process's output, read by a thread as it comes: (seconds since `t0`, line) pairs,
    also written to `log_path`."""

    def __init__(self, proc, t0, log_path):
        self.lines = []
        self._t0 = t0
        self._thread = threading.Thread(target=self._read, args=(proc, log_path), daemon=True)
        self._thread.start()

    def _read(self, proc, log_path):
        with open(log_path, "w") as log:
            for raw in proc.stdout:
                t = time.monotonic() - self._t0
                log.write(raw)
                log.flush()
                for line in raw.split("\r"):
                    line = ANSI.sub("", line).rstrip("\n")
                    if line.strip():
                        self.lines.append((t, line))

    def join(self, timeout=10):
        self._thread.join(timeout)

    def text(self):
        return "\n".join(line for _, line in self.lines)


def tail(path, chars=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cluster_status(a, ps_hosts):
    out = subprocess.run(
        [os.path.join(a.bin_dir, "mobilenet-ctl"), "status", f"--ps_hosts={ps_hosts}", "--json"],
        capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return None, out.stdout + out.stderr
    try:
        return json.loads(out.stdout), None
    except json.JSONDecodeError:
        return None, out.stdout


def commands(a, fmt):
    """(server commands, worker commands, --ps_hosts) of one run with gradients in `fmt`
    (training pulls in --pull_dtype or `fmt`), on ports free right now."""
    ps_flags, worker_flags = a.job
    shaped = a.link_mbit > 0
    ports = set()
    while len(ports) < NUM_PS + NUM_WORKERS:  # workers listen on nothing: ports may repeat
        ports.add(free_port())
    ports = sorted(ports)
    ps_addresses = [f"{PS_IP[i] if shaped else '127.0.0.1'}:{ports[i]}" for i in range(NUM_PS)]
    workers = [f"127.0.0.1:{p}" for p in ports[NUM_PS:]]
    ps_hosts = ",".join(ps_addresses)
    cluster = [f"--ps_hosts={ps_hosts}", f"--worker_hosts={','.join(workers)}"]
    # The servers keep serving after the training (--exit_after_training=false) so that
    # their byte counters can be read; beyond loopback they are plaintext on purpose.
    servers = [(["ip", "netns", "exec", NETNS[i]] if shaped else [])
               + [os.path.join(a.bin_dir, "mobilenet-ps"), "--job_name=ps", f"--task_index={i}",
                  f"--bind_address={ps_addresses[i]}", "--log_every_secs=0",
                  "--exit_after_training=false"]
               + (["--insecure"] if shaped else []) + cluster + ps_flags
               for i in range(NUM_PS)]
    wire = [f"--wire_dtype={fmt}"] + ([f"--wire_dtype_pull={a.pull_dtype}"]
                                      if a.pull_dtype else [])
    # Only the chief evaluates, and its evaluation lines need its progress reporter (not
    # --quiet). The evaluation lines are flushed as printed; stdbuf makes the rest (the
    # final evaluation) come as printed too rather than at exit.
    line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
    workers = [line_buffered
               + [os.path.join(a.bin_dir, "mobilenet-worker"), "--job_name=worker",
                  f"--task_index={i}", "--ps_patience_secs=60"]
               + (["--quiet"] if i > 0 or a.synthetic else []) + cluster + worker_flags + wire
               for i in range(NUM_WORKERS)]
    return servers, workers, ps_hosts


def run_cluster(a, fmt, log_dir, tag):
    """Trains once with gradients in `fmt`; returns the run's figures."""
    pull = a.pull_dtype or fmt
    server_commands, worker_commands, ps_hosts = commands(a, fmt)
    servers, procs = [], []
    try:
        for i, command in enumerate(server_commands):
            with open(os.path.join(log_dir, f"{tag}-ps-{i}.log"), "w") as log:
                servers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=die_with_driver))
        time.sleep(1)
        for i, s in enumerate(servers):
            if s.poll() is not None:
                raise RuntimeError(f"parameter server {i} exited ({s.returncode}):\n"
                                   + tail(os.path.join(log_dir, f"{tag}-ps-{i}.log")))
        t0 = time.monotonic()
        outputs = []
        for i, command in enumerate(worker_commands):
            p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, bufsize=1, preexec_fn=die_with_driver)
            procs.append(p)
            outputs.append(Output(p, t0, os.path.join(log_dir, f"{tag}-worker-{i}.log")))
        deadline = t0 + a.timeout_secs
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"worker {i} still running after --timeout_secs="
                                   f"{a.timeout_secs:g}; logs in {log_dir}")
            outputs[i].join()
            if p.returncode != 0:
                raise RuntimeError(f"worker {i} failed ({p.returncode}):\n"
                                   + outputs[i].text()[-3000:])
        status, error = cluster_status(a, ps_hosts)
    finally:
        stop(procs + servers)

    result = {"format": fmt, "pull_format": pull}
    examples = steps = 0
    slowest = 0.0
    for i, out in enumerate(outputs):
        m = TRAINED.search(out.text())
        if not m:
            raise RuntimeError(f"worker {i}: no 'Worker N trained ...' line:\n"
                               + out.text()[-3000:])
        steps += int(m.group(2))
        examples += int(m.group(3))
        slowest = max(slowest, int(m.group(3)) / float(m.group(4)))
    result.update({"examples": examples, "steps": steps, "wall_seconds": slowest,
                   "images_per_sec": examples / slowest})

    if status is None:
        print(f"warning: no mobilenet-ctl status, no byte counts: {error.strip()[-500:]}",
              file=sys.stderr)
    else:
        answering = [s for s in status["parameter_servers"] if s.get("ok")]
        if len(answering) == NUM_PS:
            measured = sum(int(s["bytes_in"]) + int(s["bytes_out"]) for s in answering)
            parameters = sum(int(s["parameter_bytes"]) for s in answering) // 4
            state = sum(int(s["state_bytes"]) for s in answering) // 4
            result.update({
                "parameters": parameters, "state_values": state,
                "bytes_per_step_measured": measured / steps,
                "bytes_per_step_computed":
                    parameters * (DTYPE_BYTES[pull] + DTYPE_BYTES[fmt]) + state * 4})

    if not a.synthetic:
        result.update(chief_accuracies(outputs[0], a.target))
    return result


def chief_accuracies(chief, target):
    """The chief's evaluations read live from `chief` (its timestamped output): every test
    accuracy of the weights and of their average, the seconds to the first at or above
    `target` (percent) and the final ones."""
    raw, average = [], []  # (seconds, accuracy percent)
    for t, line in chief.lines:
        m = EVALUATION.search(line)
        if m:
            raw.append((t, float(m.group(3))))
            if m.group(4) is not None:
                average.append((t, float(m.group(4))))
            continue
        m = FINAL.search(line)
        if m:
            raw.append((t, float(m.group(1))))
            continue
        m = FINAL_AVERAGE.search(line)
        if m:
            average.append((t, float(m.group(1))))
    if not raw:
        raise RuntimeError("the chief printed no test accuracy:\n" + chief.text()[-3000:])

    def first_reaching(points):
        return next((t for t, acc in points if acc >= target), None)

    return {
        "evaluations": [{"seconds": t, "accuracy": acc} for t, acc in raw],
        "average_evaluations": [{"seconds": t, "accuracy": acc} for t, acc in average],
        "seconds_to_target_raw": first_reaching(raw),
        "seconds_to_target_average": first_reaching(average) if average else None,
        "final_accuracy_raw": raw[-1][1],
        "final_accuracy_average": average[-1][1] if average else None}


# ---------------------------------------------------------------------------------------
# The report.

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(a, runs):
    summary = {}
    for fmt in a.formats:
        mine = [r for r in runs if r["format"] == fmt]
        keys = ["images_per_sec", "bytes_per_step_measured", "bytes_per_step_computed"]
        if not a.synthetic:
            keys += ["seconds_to_target_raw", "seconds_to_target_average",
                     "final_accuracy_raw", "final_accuracy_average"]
        s = {k: median([r.get(k) for r in mine]) for k in keys}
        if not a.synthetic:
            s["runs_reaching_target_raw"] = sum(
                r["seconds_to_target_raw"] is not None for r in mine)
            s["runs_reaching_target_average"] = sum(
                r["seconds_to_target_average"] is not None for r in mine)
        s["runs"] = len(mine)
        s["pull_format"] = a.pull_dtype or fmt
        summary[fmt] = s
    base = summary.get("fp32")
    if base:
        for fmt, s in summary.items():
            def ratio(key):
                return s[key] / base[key] if s[key] is not None and base[key] else None
            s["images_per_sec_ratio"] = ratio("images_per_sec")
            s["bytes_per_step_ratio"] = ratio("bytes_per_step_measured")
            if not a.synthetic:
                s["time_to_target_ratio_raw"] = ratio("seconds_to_target_raw")
                s["time_to_target_ratio_average"] = ratio("seconds_to_target_average")
                for kind in ("raw", "average"):
                    mine, theirs = s[f"final_accuracy_{kind}"], base[f"final_accuracy_{kind}"]
                    s[f"final_accuracy_points_vs_fp32_{kind}"] = (
                        mine - theirs if mine is not None and theirs is not None else None)
    return summary


def fmt_num(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def print_table(a, summary):
    link = f"{a.link_mbit:g} Mbit/s per server link" if a.link_mbit > 0 else "loopback"
    if a.synthetic:
        print(f"\nSynthetic MobileNet alpha {a.alpha:g}, {a.resolution}x{a.resolution}x"
              f"{a.channels}, {a.classes} classes, batch {a.batch}, {a.synthetic_examples} "
              f"examples, {NUM_PS} PS + "
              f"{NUM_WORKERS} workers (1 thread each), {link}; medians of {a.repeats} run(s)")
    else:
        print(f"\nFashion-MNIST, default job, {a.epochs:g} epochs, target {a.target:g}%, "
              f"{NUM_PS} PS + {NUM_WORKERS} workers (1 thread each), {link}; medians of "
              f"{a.repeats} run(s)")
    header = ["format", "pull", "img/s", "x fp32", "MB/step meas.", "MB/step comp."]
    if not a.synthetic:
        header += ["t->target raw", "x fp32", "t->target avg", "x fp32", "final raw",
                   "pts", "final avg", "pts"]
    rows = [header]
    for fmt, s in summary.items():
        row = [fmt, s["pull_format"], fmt_num(s["images_per_sec"], ".1f"),
               fmt_num(s.get("images_per_sec_ratio"), ".2f"),
               fmt_num(s["bytes_per_step_measured"] and s["bytes_per_step_measured"] / 1e6,
                       ".3f"),
               fmt_num(s["bytes_per_step_computed"] and s["bytes_per_step_computed"] / 1e6,
                       ".3f")]
        if not a.synthetic:
            def seconds(key, reached):
                if s[key] is None:
                    return "not reached"
                return f"{s[key]:.0f}s" + ("" if reached == s["runs"] else
                                           f" ({reached}/{s['runs']})")
            row += [seconds("seconds_to_target_raw", s["runs_reaching_target_raw"]),
                    fmt_num(s.get("time_to_target_ratio_raw"), ".2f"),
                    seconds("seconds_to_target_average", s["runs_reaching_target_average"]),
                    fmt_num(s.get("time_to_target_ratio_average"), ".2f"),
                    fmt_num(s["final_accuracy_raw"], ".2f"),
                    fmt_num(s.get("final_accuracy_points_vs_fp32_raw"), "+.2f"),
                    fmt_num(s["final_accuracy_average"], ".2f"),
                    fmt_num(s.get("final_accuracy_points_vs_fp32_average"), "+.2f")]
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    print("img/s: both workers' examples / the slower worker's training wall time (as it "
          "reports it). MB/step (1e6 bytes, pull + push per worker step): 'meas.' from the "
          "servers' protocol-message byte counters (all their traffic, including the chief's "
          "float32 evaluation pulls and status calls), 'comp.' from the model's parameter and "
          "batch-statistics counts and the formats' sizes.")
    if not a.synthetic:
        print("t->target: seconds from the workers' start to the chief's first evaluation "
              "line at or above the target, for the raw weights and the weight average "
              "(n/m: reached in n of m runs; the median is over those). pts: final accuracy "
              "minus fp32's, in percentage points.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--formats", default="fp32,bf16,fp16",
                   help="comma-separated wire formats of the workers (--wire_dtype)")
    p.add_argument("--pull_dtype", default="", choices=["", *DTYPE_BYTES],
                   help="the training pulls' format for every run (--wire_dtype_pull); "
                        "default: each run's format")
    p.add_argument("--link_mbit", type=float, default=0,
                   help="shape each parameter server's link to this many Mbit/s each way "
                        "(root; see above); 0: loopback")
    p.add_argument("--epochs", type=float, default=5,
                   help="epochs of the Fashion-MNIST job (fractions allowed); the cosine "
                        "schedule lasts as long")
    p.add_argument("--target", type=float, default=90, help="test accuracy target, percent")
    p.add_argument("--eval_every_epochs", type=float, default=1,
                   help="the chief's evaluation interval (epochs of its shard), the "
                        "resolution of the time to target")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--timeout_secs", type=float, default=4 * 3600,
                   help="give up on a run after this long")
    p.add_argument("--dry_run", action="store_true",
                   help="print the processes each format's run would start, and exit")
    p.add_argument("--log_dir", default="",
                   help="keep the processes' logs here (default: a temporary folder, removed "
                        "unless a run fails)")
    g = p.add_argument_group("--synthetic: images/s of a synthetic-data model, no accuracy")
    g.add_argument("--synthetic", action="store_true")
    g.add_argument("--alpha", type=float, default=1.0)
    g.add_argument("--resolution", type=int, default=224)
    g.add_argument("--channels", type=int, default=3)
    g.add_argument("--classes", type=int, default=1000,
                   help="classes of the model (ImageNet's 1000: 4.2M parameters at alpha 1)")
    g.add_argument("--batch", type=int, default=32)
    g.add_argument("--synthetic_examples", type=int, default=1024,
                   help="examples of the run in all (each worker trains half)")
    a = p.parse_args(argv)
    a.formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    for f in a.formats:
        if f not in DTYPE_BYTES:
            p.error(f"--formats: unknown format '{f}' (known: {', '.join(DTYPE_BYTES)})")
    if not a.formats or len(set(a.formats)) != len(a.formats):
        p.error("--formats: give each format once")
    if not a.epochs > 0:
        p.error("--epochs must be > 0")
    if not a.eval_every_epochs > 0:
        p.error("--eval_every_epochs must be > 0")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    if a.link_mbit < 0:
        p.error("--link_mbit must be >= 0")
    return a


def interrupt(signum, frame):
    raise KeyboardInterrupt()


def main():
    a = parse_args()
    if a.link_mbit > 0 and os.geteuid() != 0 and not a.dry_run:
        sys.exit("--link_mbit needs root (network namespaces and tc)")
    for binary in ("mobilenet-ps", "mobilenet-worker", "mobilenet-ctl"):
        if not a.dry_run and not os.access(os.path.join(a.bin_dir, binary), os.X_OK):
            sys.exit(f"no {binary} in {a.bin_dir} (build first, or give --bin_dir)")
    a.job = synthetic_job_flags(a) if a.synthetic else default_job_flags(a)
    if a.dry_run:
        for fmt in a.formats:
            servers, workers, _ = commands(a, fmt)
            print(f"{fmt}:")
            for command in servers + workers:
                print("  " + " ".join(command))
        return
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="wire-ttacc-")
    os.makedirs(log_dir, exist_ok=True)
    if not a.json:
        print(f"parameter servers: {' '.join(a.job[0])}\nworkers: {' '.join(a.job[1])}\n"
              f"logs: {log_dir}", flush=True)
    # SIGTERM ends the run like Ctrl-C: the finally clauses stop the processes and remove
    # the namespaces. (SIGINT explicitly too: a shell starts a background job with it
    # ignored, and Python then installs no handler of its own.)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    failed = True
    try:
        if a.link_mbit > 0:
            shaped_links_up(a.link_mbit)
        runs = []
        for r in range(a.repeats):
            for fmt in a.formats:
                result = run_cluster(a, fmt, log_dir, f"run{r + 1}-{fmt}")
                runs.append(result)
                if not a.json:
                    line = (f"run {r + 1} {fmt} (pull {result['pull_format']}): "
                            f"{result['images_per_sec']:.1f} img/s, "
                            f"{result['wall_seconds']:.0f}s")
                    if "bytes_per_step_measured" in result:
                        line += (f", {result['bytes_per_step_measured'] / 1e6:.3f} MB/step "
                                 f"measured ({result['bytes_per_step_computed'] / 1e6:.3f} "
                                 f"computed)")
                    if not a.synthetic:
                        def reached(key):
                            t = result[key]
                            return "target not reached" if t is None else f"target at {t:.0f}s"
                        line += (f", raw {result['final_accuracy_raw']:.2f}% "
                                 f"({reached('seconds_to_target_raw')})")
                        if result["final_accuracy_average"] is not None:
                            line += (f", average {result['final_accuracy_average']:.2f}% "
                                     f"({reached('seconds_to_target_average')})")
                    print(line, flush=True)
        summary = summarize(a, runs)
        failed = False
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; stopping the processes and removing the namespaces",
              file=sys.stderr)
    finally:
        if a.link_mbit > 0:
            shaped_links_down()
    if failed:
        print(f"logs: {log_dir}", file=sys.stderr)
        sys.exit(1)
    if not a.log_dir:
        shutil.rmtree(log_dir, ignore_errors=True)
    if a.json:
        print(json.dumps({
            "mode": "synthetic" if a.synthetic else "fashion_mnist", "link_mbit": a.link_mbit,
            "epochs": None if a.synthetic else a.epochs,
            "target": None if a.synthetic else a.target,
            "model": {"alpha": a.alpha, "resolution": a.resolution, "channels": a.channels,
                      "classes": a.classes, "batch": a.batch, "examples": a.synthetic_examples}
            if a.synthetic else None,
            "ps_flags": a.job[0], "worker_flags": a.job[1],
            "bytes_per_step": "measured: parameter servers' bytes_in + bytes_out / worker "
                              "steps; computed: from the model's size",
            "summary": summary, "runs": runs}))
    else:
        print_table(a, summary)


if __name__ == "__main__":
    main()
