#!/usr/bin/python3
"""Elastic workers: a worker joins a running job and another leaves it for good; test
accuracy and images/s over time, beside the same job with a fixed pair of workers.

The default Fashion-MNIST job of deploy/run_local.sh (the flags its --dry_run prints for
the default preset, with --epochs=E, the cosine schedule following, --eval_every_epochs
and --threads=1) on 2 parameter servers, on loopback (plaintext gRPC), twice:

  fixed    --worker_hosts of 2, each worker trains its fixed half of the data set
  leased   the elastic flags below, but workers 0 and 1 throughout (no join, no leave):
           what leasing blocks costs or gains by itself (--runs leased; not by default)
  elastic  --max_workers=3 with --worker_hosts of 2: parameter server 0 leases the data
           in blocks of --data_block_examples. Workers 0 and 1 start; once the servers
           have seen --join_at of the job's examples, worker 2 (beyond --worker_hosts)
           joins; once they have seen --leave_at of them, worker 1 is SIGKILLed and not
           restarted (its block goes back to the pool after --worker_liveness_secs and
           is trained by the others).

Every second the script reads `mobilenet-ctl status --json` (parameter server 0's
examples_seen). The table gives, per phase of each run (before the join, between the
join and the leave, after the leave), its length, the workers training, the images/s the
servers applied (examples_seen over the phase's time) and the chief's latest test
accuracy at its end, of the weights and of their average; then each run's wall time and
final accuracies. The chief evaluates every --eval_every_secs on a thread of its own
(timed evaluations, the same wall-clock cadence in both runs) and at the end.

  /usr/bin/python3 tests/benchmarks/elastic_join_leave.py [--bin_dir build/bin]
      [--epochs 4] [--join_at 0.25] [--leave_at 0.6] [--eval_every_secs 20]
      [--runs elastic,fixed] [--json] [--log_dir DIR]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire_time_to_accuracy as wire  # noqa: E402  (job flags, output readers, processes)

ROOT = wire.ROOT
NUM_PS = 2
HOSTS = 2                 # --worker_hosts entries
TRAIN_EXAMPLES = 60000    # Fashion-MNIST
JOINER, LEAVER = 2, 1
TIMED = re.compile(r"timed evaluation: test accuracy ([0-9.]+)%.*? at global step \d+"
                   r"(?:; weight average: test accuracy ([0-9.]+)%)?")


def evaluations(chief):
    """The chief's timed and final evaluations: (seconds, raw %, average % or None)."""
    points, final_raw = [], None
    for t, line in chief.lines:
        m = TIMED.search(line)
        if m:
            points.append((t, float(m.group(1)), float(m.group(2)) if m.group(2) else None))
            continue
        m = wire.FINAL.search(line)
        if m:
            final_raw = (t, float(m.group(1)))
            continue
        m = wire.FINAL_AVERAGE.search(line)
        if m and final_raw is not None:
            points.append((final_raw[0], final_raw[1], float(m.group(1))))
            final_raw = None
    if final_raw is not None:
        points.append((final_raw[0], final_raw[1], None))
    if not points:
        raise RuntimeError("the chief printed no test accuracy:\n" + chief.text()[-3000:])
    return points


def commands(a, run):
    """(server commands, worker commands by task, --ps_hosts) of one run."""
    ps_flags, worker_flags = a.job
    worker_flags = wire.dedupe(worker_flags + [f"--eval_every_secs={a.eval_every_secs:g}"])
    ports = sorted({wire.free_port() for _ in range(NUM_PS + HOSTS + 4)})[:NUM_PS + HOSTS]
    ps_addresses = [f"127.0.0.1:{p}" for p in ports[:NUM_PS]]
    ps_hosts = ",".join(ps_addresses)
    cluster = [f"--ps_hosts={ps_hosts}",
               f"--worker_hosts={','.join(f'127.0.0.1:{p}' for p in ports[NUM_PS:])}"]
    elastic = (["--max_workers=3", f"--worker_liveness_secs={a.worker_liveness_secs:g}"]
               if run in ("elastic", "leased") else [])
    servers = [[os.path.join(a.bin_dir, "mobilenet-ps"), "--job_name=ps", f"--task_index={i}",
                f"--bind_address={ps_addresses[i]}", "--log_every_secs=0",
                "--exit_after_training=false"] + cluster + ps_flags + elastic
               for i in range(NUM_PS)]
    tasks = [0, 1, JOINER] if run == "elastic" else [0, 1]
    workers = {i: ["stdbuf", "-oL", os.path.join(a.bin_dir, "mobilenet-worker"),
                   "--job_name=worker", f"--task_index={i}", "--ps_patience_secs=60"]
               + (["--quiet"] if i > 0 else []) + cluster + worker_flags + elastic
               + ([f"--data_block_examples={a.data_block_examples}"] if elastic else [])
               for i in tasks}
    return servers, workers, ps_hosts


def examples_seen(a, ps_hosts):
    status, _ = wire.cluster_status(a, ps_hosts)
    if status is None:
        return None
    ps0 = status["parameter_servers"][0]
    return int(ps0["examples_seen"]) if ps0.get("ok") else None


def run_cluster(a, run, log_dir):
    server_commands, worker_commands, ps_hosts = commands(a, run)
    total = a.epochs * TRAIN_EXAMPLES
    servers, procs, outputs = [], {}, {}
    samples = []  # (seconds, examples_seen)
    events = []   # (seconds, what)
    try:
        for i, command in enumerate(server_commands):
            with open(os.path.join(log_dir, f"{run}-ps-{i}.log"), "w") as log:
                servers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=wire.die_with_driver))
        time.sleep(1)
        t0 = time.monotonic()

        def start(task):
            p = subprocess.Popen(worker_commands[task], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1,
                                 preexec_fn=wire.die_with_driver)
            procs[task] = p
            outputs[task] = wire.Output(p, t0, os.path.join(log_dir, f"{run}-worker-{task}.log"))

        for task in (0, 1):
            start(task)
        joined = left = run != "elastic"
        deadline = t0 + a.timeout_secs
        while procs[0].poll() is None or any(
                p.poll() is None for t, p in procs.items() if not (t == LEAVER and left and
                                                                   run == "elastic")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{run}: still training after {a.timeout_secs:g} s")
            for task, p in procs.items():
                if p.poll() not in (None, 0) and not (run == "elastic" and task == LEAVER):
                    outputs[task].join()
                    raise RuntimeError(f"{run}: worker {task} failed ({p.returncode}):\n"
                                       + outputs[task].text()[-3000:])
            seen = examples_seen(a, ps_hosts)
            now = time.monotonic() - t0
            if seen is not None:
                samples.append((now, seen))
                if not joined and seen >= a.join_at * total:
                    start(JOINER)
                    events.append((now, f"worker {JOINER} joins"))
                    joined = True
                elif joined and not left and seen >= a.leave_at * total:
                    procs[LEAVER].send_signal(signal.SIGKILL)
                    events.append((now, f"worker {LEAVER} killed"))
                    left = True
            time.sleep(1)
        wall = time.monotonic() - t0
        for out in outputs.values():
            out.join()
        seen = examples_seen(a, ps_hosts)
        if seen is not None:
            samples.append((wall, seen))
    finally:
        wire.stop(list(procs.values()) + servers)

    points = evaluations(outputs[0])
    bounds = [0.0] + [t for t, _ in events] + [wall]
    names = (["2 workers (0, 1)", f"3 workers (0, 1, {JOINER})", f"2 workers (0, {JOINER})"]
             if run == "elastic" else
             ["2 workers (0, 1), leased blocks" if run == "leased" else
              "2 workers (0, 1), fixed shards"])
    phases = []
    for k in range(len(bounds) - 1):
        begin, end = bounds[k], bounds[k + 1]
        inside = [(t, s) for t, s in samples if begin <= t <= end]
        rate = ((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
                if len(inside) >= 2 and inside[-1][0] > inside[0][0] else None)
        last = [p for p in points if p[0] <= end + 0.5]
        phases.append({"phase": names[k], "begin": begin, "end": end, "images_per_sec": rate,
                       "accuracy_at_end": last[-1][1] if last else None,
                       "average_accuracy_at_end": last[-1][2] if last else None})
    reached = [t for t, raw, avg in points if max(raw, avg or 0) >= a.target]
    return {"run": run, "wall_seconds": wall, "events": events, "phases": phases,
            "final_accuracy_raw": points[-1][1], "final_accuracy_average": points[-1][2],
            "seconds_to_target": reached[0] if reached else None,
            "evaluations": [{"seconds": t, "raw": raw, "average": avg}
                            for t, raw, avg in points]}


def print_table(a, results):
    print(f"\nFashion-MNIST, default job, {a.epochs} epochs, {NUM_PS} PS, workers of 1 thread, "
          f"loopback; elastic: worker {JOINER} joins at {a.join_at:g} of the examples, worker "
          f"{LEAVER} is killed at {a.leave_at:g}; --worker_liveness_secs="
          f"{a.worker_liveness_secs:g}")
    rows = [["run", "phase", "from", "to", "img/s applied", "accuracy at end",
             "average at end"]]
    for r in results:
        for p in r["phases"]:
            rows.append([r["run"], p["phase"], f"{p['begin']:.0f}s", f"{p['end']:.0f}s",
                         wire.fmt_num(p["images_per_sec"], ".0f"),
                         wire.fmt_num(p["accuracy_at_end"], ".2f"),
                         wire.fmt_num(p["average_accuracy_at_end"], ".2f")])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    for r in results:
        target = r["seconds_to_target"]
        print(f"{r['run']}: wall {r['wall_seconds']:.0f}s, final accuracy "
              f"{r['final_accuracy_raw']:.2f}% (weight average "
              f"{wire.fmt_num(r['final_accuracy_average'], '.2f')}%), {a.target:g}% (raw or "
              f"average) {'not reached' if target is None else f'at {target:.0f}s'}")
    print("img/s applied: parameter server 0's examples_seen over the phase; accuracy at "
          "end: the chief's latest evaluation by the phase's end (timed every "
          f"{a.eval_every_secs:g} s, and the final one).")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", default=os.environ.get("MOBILENET_BIN_DIR",
                                                       os.path.join(ROOT, "build", "bin")))
    p.add_argument("--runs", default="elastic,fixed")
    p.add_argument("--epochs", type=int, default=4, help="whole epochs of the data set")
    p.add_argument("--join_at", type=float, default=0.25)
    p.add_argument("--leave_at", type=float, default=0.6)
    p.add_argument("--eval_every_secs", type=float, default=20)
    p.add_argument("--eval_every_epochs", type=float, default=0,
                   help="given to run_local.sh's job (0: the chief evaluates at the end only, "
                        "besides the timed evaluations)")
    p.add_argument("--target", type=float, default=89)
    p.add_argument("--worker_liveness_secs", type=float, default=10)
    p.add_argument("--data_block_examples", type=int, default=1024)
    p.add_argument("--timeout_secs", type=float, default=3600)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dry_run", action="store_true")
    p.add_argument("--log_dir", default="")
    a = p.parse_args(argv)
    a.runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    if not a.runs or any(r not in ("elastic", "leased", "fixed") for r in a.runs):
        p.error("--runs: of elastic, leased, fixed")
    if a.epochs < 1:
        p.error("--epochs must be >= 1")
    if not a.eval_every_secs > 0:
        p.error("--eval_every_secs must be > 0")
    if not 0 < a.join_at < a.leave_at < 1:
        p.error("need 0 < --join_at < --leave_at < 1")
    return a


def main():
    a = parse_args()
    a.job = wire.default_job_flags(a)
    if a.dry_run:
        for run in a.runs:
            servers, workers, _ = commands(a, run)
            print(f"{run}:")
            for command in servers + list(workers.values()):
                print("  " + " ".join(command))
        return 0
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="elastic-join-leave-")
    os.makedirs(log_dir, exist_ok=True)
    print(f"logs: {log_dir}", flush=True)
    results = []
    for run in a.runs:
        results.append(run_cluster(a, run, log_dir))
        print(f"{run}: {results[-1]['wall_seconds']:.0f}s, final "
              f"{results[-1]['final_accuracy_raw']:.2f}%", flush=True)
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        print_table(a, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
