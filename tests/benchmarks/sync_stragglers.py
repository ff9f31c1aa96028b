#!/usr/bin/python3
"""Synchronous training with backup workers against a straggler: time to accuracy and
images/s of asynchronous, synchronous and synchronous-with-a-backup training.

The default Fashion-MNIST job of deploy/run_local.sh (the flags its --dry_run prints for
the default preset, with --epochs=E, the cosine schedule following, --eval_every_epochs and
--threads=1) on 2 parameter servers + 3 workers of 1 compute thread each, on loopback
(plaintext gRPC), once per mode and straggler condition:

  modes (--modes):
    async        the default trainer: every gradient applied as it arrives
    sync         --sync_replicas --replicas_to_aggregate=3: each step averages one
                 gradient of every worker
    sync_backup  --sync_replicas --replicas_to_aggregate=2: each step averages the first
                 2 of 3; the late one is dropped (one backup worker, Chen et al. 2016)
  conditions (--straggler, --no_straggler; both by default):
    straggler    this script makes worker --straggler_worker (default 2) slow: SIGSTOP and
                 SIGCONT in cycles of --straggler_period seconds (default 0.2), stopped
                 --straggler_duty of each (default 0.75), from its start to its exit
    none         undisturbed

For each run:
  - images/s: the examples the workers trained (dropped gradients included) divided by
    the job's wall time (from the workers' start to the last worker's exit), and applied
    images/s: the share of them whose gradients the servers averaged (pushes_applied of
    the global_step gradients counted) over the same time;
  - time to --target test accuracy: the chief (worker 0, never the straggler) evaluates
    every --eval_every_epochs epochs of its shard and at the end; its output is read live
    and each evaluation line timestamped from the workers' start. The first reaching the
    target counts, for the raw weights and for the weight average (which the default job
    keeps: --weight_ema_decay);
  - the final accuracy of the raw weights and of the weight average;
  - sync mode: parameter server 0's sync_steps and sync_pushes_dropped (gradients computed
    from a closed step) from `mobilenet-ctl status --json` after the training (the
    servers stay up for it: --exit_after_training=false).

  /usr/bin/python3 tests/benchmarks/sync_stragglers.py [--bin_dir build/bin]
      [--modes async,sync,sync_backup] [--straggler | --no_straggler]
      [--straggler_duty 0.75] [--straggler_period 0.2] [--epochs 5] [--target 90]
      [--eval_every_epochs 1] [--repeats 1] [--json] [--dry_run] [--log_dir DIR]

Runs cycle through the modes and conditions --repeats times; the table at the end has each
(mode, condition)'s medians. Reuses wire_time_to_accuracy.py's job flags, output readers
and process handling.
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
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire_time_to_accuracy as wire  # noqa: E402  (its helpers; its NUM_WORKERS is not ours)

ROOT = wire.ROOT
NUM_PS = 2
NUM_WORKERS = 3
MODES = {
    "async": [],
    "sync": ["--sync_replicas", "--replicas_to_aggregate=3"],
    "sync_backup": ["--sync_replicas", "--replicas_to_aggregate=2"],
}
CONDITIONS = ("none", "straggler")


# ---------------------------------------------------------------------------------------
# The straggler.

class Straggler:
    """Stops and continues one process in cycles from a thread: SIGSTOP, `duty` x `period`
    seconds, SIGCONT, the rest of the period; until stop() or the process exits. stop()
    leaves it running (SIGCONT)."""

    def __init__(self, popen, period, duty):
        self._popen = popen
        self._period = period
        self._duty = duty
        self._done = threading.Event()
        self.cycles = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _send(self, sig):
        if self._popen.poll() is not None:
            return False
        try:
            os.kill(self._popen.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def _run(self):
        stopped, running = self._period * self._duty, self._period * (1 - self._duty)
        while not self._done.is_set():
            if not self._send(signal.SIGSTOP):
                break
            self._done.wait(stopped)
            if not self._send(signal.SIGCONT):
                break
            self.cycles += 1
            self._done.wait(running)
        self._send(signal.SIGCONT)

    def stop(self):
        self._done.set()
        self._thread.join(10)
        self._send(signal.SIGCONT)


# ---------------------------------------------------------------------------------------
# One run of the cluster.

def commands(a, mode):
    """(server commands, worker commands, --ps_hosts) of one run in `mode`, on ports free
    right now."""
    ps_flags, worker_flags = a.job
    ports = set()
    while len(ports) < NUM_PS + NUM_WORKERS:  # workers listen on nothing: ports may repeat
        ports.add(wire.free_port())
    ports = sorted(ports)
    ps_addresses = [f"127.0.0.1:{ports[i]}" for i in range(NUM_PS)]
    ps_hosts = ",".join(ps_addresses)
    cluster = [f"--ps_hosts={ps_hosts}",
               f"--worker_hosts={','.join(f'127.0.0.1:{p}' for p in ports[NUM_PS:])}"]
    sync = MODES[mode] + ([f"--worker_liveness_secs={a.worker_liveness_secs:g}"]
                          if MODES[mode] else [])
    # The servers stay up after the training so that their final status can be read.
    servers = [[os.path.join(a.bin_dir, "mobilenet-ps"), "--job_name=ps", f"--task_index={i}",
                f"--bind_address={ps_addresses[i]}", "--log_every_secs=0",
                "--exit_after_training=false"] + cluster + ps_flags + sync
               for i in range(NUM_PS)]
    # Only the chief evaluates; its evaluation lines need its progress reporter (not
    # --quiet); stdbuf makes its final evaluation come as printed rather than at exit.
    line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
    workers = [line_buffered
               + [os.path.join(a.bin_dir, "mobilenet-worker"), "--job_name=worker",
                  f"--task_index={i}", "--ps_patience_secs=60"]
               + (["--quiet"] if i > 0 else []) + cluster + worker_flags + sync
               for i in range(NUM_WORKERS)]
    return servers, workers, ps_hosts


def run_cluster(a, mode, condition, log_dir, tag):
    """Trains once in `mode` under `condition`; returns the run's figures."""
    server_commands, worker_commands, ps_hosts = commands(a, mode)
    servers, procs, outputs = [], [], []
    straggler = None
    try:
        for i, command in enumerate(server_commands):
            with open(os.path.join(log_dir, f"{tag}-ps-{i}.log"), "w") as log:
                servers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=wire.die_with_driver))
        time.sleep(1)
        for i, s in enumerate(servers):
            if s.poll() is not None:
                raise RuntimeError(f"parameter server {i} exited ({s.returncode}):\n"
                                   + wire.tail(os.path.join(log_dir, f"{tag}-ps-{i}.log")))
        t0 = time.monotonic()
        for i, command in enumerate(worker_commands):
            p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, bufsize=1, preexec_fn=wire.die_with_driver)
            procs.append(p)
            outputs.append(wire.Output(p, t0, os.path.join(log_dir, f"{tag}-worker-{i}.log")))
            if condition == "straggler" and i == a.straggler_worker:
                straggler = Straggler(p, a.straggler_period, a.straggler_duty)
        deadline = t0 + a.timeout_secs
        ended = [None] * NUM_WORKERS
        while any(e is None for e in ended):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers still running after --timeout_secs="
                                   f"{a.timeout_secs:g}; logs in {log_dir}")
            for i, p in enumerate(procs):
                if ended[i] is None and p.poll() is not None:
                    ended[i] = time.monotonic() - t0
                    if p.returncode != 0:
                        outputs[i].join()
                        raise RuntimeError(f"worker {i} failed ({p.returncode}):\n"
                                           + outputs[i].text()[-3000:])
            time.sleep(0.1)
        if straggler is not None:
            straggler.stop()
        for out in outputs:
            out.join()
        status, error = wire.cluster_status(a, ps_hosts)
    finally:
        if straggler is not None:
            straggler.stop()
        wire.stop(procs + servers)

    wall = max(ended)
    result = {"mode": mode, "condition": condition, "wall_seconds": wall,
              "worker_seconds": ended,
              "straggler_cycles": straggler.cycles if straggler is not None else 0}
    examples = 0
    for i, out in enumerate(outputs):
        m = wire.TRAINED.search(out.text())
        if not m:
            raise RuntimeError(f"worker {i}: no 'Worker N trained ...' line:\n"
                               + out.text()[-3000:])
        examples += int(m.group(3))
    result.update({"examples": examples, "images_per_sec": examples / wall})

    if status is None:
        print(f"warning: no mobilenet-ctl status after the training: {error.strip()[-500:]}",
              file=sys.stderr)
    else:
        ps0 = status["parameter_servers"][0]
        if ps0.get("ok"):
            # The servers count every gradient the workers computed (global_step; in sync
            # mode the dropped ones too) and average pushes_applied of them.
            counted = max(1, int(ps0["global_step"]))
            applied = int(ps0["pushes_applied"])
            result["global_step"] = counted
            result["applied_images_per_sec"] = result["images_per_sec"] * min(1.0, applied / counted)
            sync = ps0.get("sync")
            if MODES[mode] and sync:
                result["sync_steps"] = int(sync["steps"])
                result["sync_pushes_dropped"] = int(sync["pushes_dropped"])

    result.update(wire.chief_accuracies(outputs[0], a.target))
    return result


# ---------------------------------------------------------------------------------------
# The report.

KEYS = ["images_per_sec", "applied_images_per_sec", "wall_seconds", "seconds_to_target_raw",
        "seconds_to_target_average", "final_accuracy_raw", "final_accuracy_average",
        "sync_steps", "sync_pushes_dropped"]


def summarize(a, runs):
    summary = []
    for mode in a.modes:
        for condition in a.conditions:
            mine = [r for r in runs if r["mode"] == mode and r["condition"] == condition]
            s = {k: wire.median([r.get(k) for r in mine]) for k in KEYS}
            s.update({"mode": mode, "condition": condition, "runs": len(mine),
                      "runs_reaching_target_raw":
                          sum(r["seconds_to_target_raw"] is not None for r in mine),
                      "runs_reaching_target_average":
                          sum(r["seconds_to_target_average"] is not None for r in mine)})
            summary.append(s)
    return summary


def print_table(a, summary):
    straggler = (f"straggler: worker {a.straggler_worker} stopped {a.straggler_duty:g} of "
                 f"every {a.straggler_period:g} s")
    print(f"\nFashion-MNIST, default job, {a.epochs:g} epochs, target {a.target:g}%, "
          f"{NUM_PS} PS + {NUM_WORKERS} workers (1 thread each), loopback; {straggler}; "
          f"medians of {a.repeats} run(s)")
    header = ["mode", "straggler", "img/s", "applied img/s", "wall", "t->target raw",
              "t->target avg", "final raw", "final avg", "sync steps", "dropped"]
    rows = [header]
    for s in summary:
        def seconds(key, reached):
            if s[key] is None:
                return "not reached"
            return f"{s[key]:.0f}s" + ("" if reached == s["runs"] else
                                       f" ({reached}/{s['runs']})")
        rows.append([s["mode"], "yes" if s["condition"] == "straggler" else "no",
                     wire.fmt_num(s["images_per_sec"], ".1f"),
                     wire.fmt_num(s["applied_images_per_sec"], ".1f"),
                     wire.fmt_num(s["wall_seconds"], ".0f") + "s",
                     seconds("seconds_to_target_raw", s["runs_reaching_target_raw"]),
                     seconds("seconds_to_target_average", s["runs_reaching_target_average"]),
                     wire.fmt_num(s["final_accuracy_raw"], ".2f"),
                     wire.fmt_num(s["final_accuracy_average"], ".2f"),
                     wire.fmt_num(s["sync_steps"], ".0f"),
                     wire.fmt_num(s["sync_pushes_dropped"], ".0f")])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    print("img/s: the examples all workers trained (dropped gradients included) / the job's "
          "wall time (workers' start to the last one's exit); applied img/s: the examples "
          "the servers applied / the same. t->target: seconds from the workers' start to the "
          "chief's first evaluation at or above the target, raw weights and weight average "
          "(n/m: reached in n of m runs; the median is over those). sync steps, dropped: "
          "parameter server 0's sync_steps and sync_pushes_dropped.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", default=os.environ.get("MOBILENET_BIN_DIR",
                                                       os.path.join(ROOT, "build", "bin")),
                   help="the binaries (default $MOBILENET_BIN_DIR or build/bin)")
    p.add_argument("--modes", default="async,sync,sync_backup",
                   help=f"comma-separated modes, of {', '.join(MODES)}")
    p.add_argument("--straggler", action="store_true",
                   help="run with the straggler only (default: with and without)")
    p.add_argument("--no_straggler", action="store_true",
                   help="run without the straggler only (default: with and without)")
    p.add_argument("--straggler_worker", type=int, default=2,
                   help="the straggler's task index (not 0: the chief evaluates)")
    p.add_argument("--straggler_duty", type=float, default=0.75,
                   help="fraction of each cycle the straggler is stopped, in (0, 1)")
    p.add_argument("--straggler_period", type=float, default=0.2,
                   help="seconds of one SIGSTOP/SIGCONT cycle")
    p.add_argument("--epochs", type=float, default=5,
                   help="epochs of the Fashion-MNIST job (fractions allowed); the cosine "
                        "schedule lasts as long")
    p.add_argument("--target", type=float, default=90,
                   help="test accuracy target, percent (a fraction <= 1 is taken as such: "
                        "0.9 = 90%%)")
    p.add_argument("--eval_every_epochs", type=float, default=1,
                   help="the chief's evaluation interval (epochs of its shard), the "
                        "resolution of the time to target")
    p.add_argument("--worker_liveness_secs", type=float, default=30,
                   help="sync modes: given to the servers and workers")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--timeout_secs", type=float, default=4 * 3600,
                   help="give up on a run after this long")
    p.add_argument("--dry_run", action="store_true",
                   help="print the processes each run would start, and exit")
    p.add_argument("--log_dir", default="",
                   help="keep the processes' logs here (default: a temporary folder, removed "
                        "unless a run fails)")
    a = p.parse_args(argv)
    a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in a.modes:
        if m not in MODES:
            p.error(f"--modes: unknown mode '{m}' (known: {', '.join(MODES)})")
    if not a.modes or len(set(a.modes)) != len(a.modes):
        p.error("--modes: give each mode once")
    if a.straggler and a.no_straggler:
        p.error("--straggler and --no_straggler exclude each other (neither: both)")
    a.conditions = (["straggler"] if a.straggler else ["none"] if a.no_straggler
                    else list(CONDITIONS))
    if not 0 < a.straggler_worker < NUM_WORKERS:
        p.error(f"--straggler_worker must be in [1, {NUM_WORKERS - 1}] (0 is the chief)")
    if not 0 < a.straggler_duty < 1:
        p.error("--straggler_duty must be in (0, 1)")
    if not a.straggler_period > 0:
        p.error("--straggler_period must be > 0")
    if not a.epochs > 0:
        p.error("--epochs must be > 0")
    if 0 < a.target <= 1:
        a.target *= 100
    if not 0 < a.target <= 100:
        p.error("--target must be a percentage in (0, 100] or a fraction in (0, 1]")
    if not a.eval_every_epochs > 0:
        p.error("--eval_every_epochs must be > 0")
    if not a.worker_liveness_secs > 0:
        p.error("--worker_liveness_secs must be > 0")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    return a


def interrupt(signum, frame):
    raise KeyboardInterrupt()


def main():
    a = parse_args()
    for binary in ("mobilenet-ps", "mobilenet-worker", "mobilenet-ctl"):
        if not a.dry_run and not os.access(os.path.join(a.bin_dir, binary), os.X_OK):
            sys.exit(f"no {binary} in {a.bin_dir} (build first, or give --bin_dir)")
    a.job = wire.default_job_flags(a)
    if a.dry_run:
        for mode in a.modes:
            for condition in a.conditions:
                servers, workers, _ = commands(a, mode)
                plan = (f"worker {a.straggler_worker} stopped {a.straggler_duty:g} of every "
                        f"{a.straggler_period:g} s" if condition == "straggler"
                        else "no straggler")
                print(f"{mode}, {plan}:")
                for command in servers + workers:
                    print("  " + " ".join(command))
        return
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="sync-stragglers-")
    os.makedirs(log_dir, exist_ok=True)
    if not a.json:
        print(f"parameter servers: {' '.join(a.job[0])}\nworkers: {' '.join(a.job[1])}\n"
              f"logs: {log_dir}", flush=True)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    failed = True
    try:
        runs = []
        for r in range(a.repeats):
            for mode in a.modes:
                for condition in a.conditions:
                    tag = f"run{r + 1}-{mode}-{condition}"
                    result = run_cluster(a, mode, condition, log_dir, tag)
                    runs.append(result)
                    if a.json:
                        continue

                    def reached(key):
                        t = result[key]
                        return "target not reached" if t is None else f"target at {t:.0f}s"
                    line = (f"run {r + 1} {mode}, {condition}: {result['images_per_sec']:.1f} "
                            f"img/s, {result['wall_seconds']:.0f}s, raw "
                            f"{result['final_accuracy_raw']:.2f}% "
                            f"({reached('seconds_to_target_raw')})")
                    if result["final_accuracy_average"] is not None:
                        line += (f", average {result['final_accuracy_average']:.2f}% "
                                 f"({reached('seconds_to_target_average')})")
                    if "sync_pushes_dropped" in result:
                        line += (f", {result['sync_steps']} sync steps, "
                                 f"{result['sync_pushes_dropped']} dropped")
                    print(line, flush=True)
        summary = summarize(a, runs)
        failed = False
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; stopping the processes", file=sys.stderr)
    if failed:
        print(f"logs: {log_dir}", file=sys.stderr)
        sys.exit(1)
    if not a.log_dir:
        shutil.rmtree(log_dir, ignore_errors=True)
    if a.json:
        print(json.dumps({"epochs": a.epochs, "target": a.target,
                          "straggler": {"worker": a.straggler_worker, "duty": a.straggler_duty,
                                        "period": a.straggler_period},
                          "ps_flags": a.job[0], "worker_flags": a.job[1],
                          "summary": summary, "runs": runs}))
    else:
        print_table(a, summary)


if __name__ == "__main__":
    main()
