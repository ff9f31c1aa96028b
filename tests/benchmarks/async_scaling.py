#!/usr/bin/python3
"""Asynchronous scaling study: how final test accuracy and gradient staleness change as
workers are added, for each staleness policy of the parameter server.

For every number of workers M (default 1, 2, 4, 8) and policy (default apply, scale, dc,
dca) it trains one cluster on loopback, plaintext: one mobilenet-ps and M mobilenet-workers
with one compute thread each (8 workers oversubscribe a 2-core machine; what matters
here is the staleness that brings). Every run sees the same total number of examples:
worker i of M trains data shard i (1/M of the set) for --epochs epochs, so M workers
together make --epochs passes over the training set, with the same learning-rate
schedule (it is driven by examples seen, not by steps). The schedule halves the learning
rate every half epoch by default, so that a run ends at a small rate and its final
accuracy says where it converged rather than where the last noisy steps left it.

Policies: apply, scale, reject (mobilenet-ps --staleness_policy), dc (delay compensation
with a constant --dc_lambda, DC-ASGD-c) and dca (--dc_adaptive: lambda --dca_lambda
divided by the root of RMSprop's mean square, DC-ASGD-a).

Per run it reports the chief's final test accuracy (on the whole test set) and the
staleness of every applied push (the versions the server moved between the pull a
gradient was computed from and its application), mean and p90, from the distribution
the server logs as it exits. The server folds staleness >= 63 into its last bucket, so a
mean is then a lower bound (marked with >=).

  /usr/bin/python3 tests/benchmarks/async_scaling.py [--bin_dir build/bin]
      [--workers 1,2,4,8] [--policies apply,scale,dc,dca] [--epochs 3] [--seeds 1]
      [--alpha 0.5 --resolution 32] [--dc_lambda 0.04] [--dca_lambda 2] [--json FILE]

Prints a Markdown table (one row per workers x policy; with several seeds, the mean
accuracy and every seed's). The defaults run in about 30 minutes on 2 cores.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from e2e_common import free_ports  # noqa: E402
ACCURACY = re.compile(r"^Test accuracy: ([0-9.]+)%", re.MULTILINE)
STALENESS = re.compile(r"staleness of the (\d+) pushes applied by this run: (.*)$", re.MULTILINE)


def staleness_summary(ps_log):
    """(pushes, mean, p90, folded) from the server's end-of-run distribution line."""
    m = STALENESS.search(ps_log)
    if not m:
        sys.exit(f"no staleness distribution in the server's log:\n{ps_log[-2000:]}")
    total = int(m.group(1))
    counts, folded = {}, False
    if m.group(2).strip() != "none":
        for item in m.group(2).split():
            k, v = item.split(":")
            folded = folded or k.endswith("+")
            counts[int(k.rstrip("+"))] = int(v)
    if sum(counts.values()) != total:
        sys.exit(f"staleness counts do not add up to {total}: {m.group(0)}")
    mean = sum(k * v for k, v in counts.items()) / max(1, total)
    p90, seen = 0, 0
    for k in sorted(counts):
        seen += counts[k]
        if seen >= 0.9 * total:
            p90 = k
            break
    return total, mean, p90, folded


def run_cluster(a, workers, policy, seed, log_dir):
    ports = free_ports(1 + workers)
    cluster = [f"--ps_hosts=127.0.0.1:{ports[0]}",
               "--worker_hosts=" + ",".join(f"127.0.0.1:{p}" for p in ports[1:])]
    shared = [f"--alpha={a.alpha}", f"--resolution={a.resolution}", f"--seed={seed}"]
    ps_flags = [f"--lr_decay_factor={a.lr_decay_factor}",
                f"--epochs_per_decay={a.epochs_per_decay}", "--log_every_secs=0"]
    if policy == "dc":
        ps_flags += ["--staleness_policy=dc", f"--dc_lambda={a.dc_lambda}"]
    elif policy == "dca":
        ps_flags += ["--staleness_policy=dc", "--dc_adaptive", f"--dc_lambda={a.dca_lambda}"]
    else:
        ps_flags.append(f"--staleness_policy={policy}")
    ps_flags += a.ps_flag
    name = f"w{workers}-{policy}-s{seed}"
    ps_log_path = os.path.join(log_dir, f"{name}-ps.log")
    chief_log_path = os.path.join(log_dir, f"{name}-worker0.log")
    procs = []
    start = time.monotonic()
    with open(ps_log_path, "w") as ps_log:
        procs.append(subprocess.Popen(
            [os.path.join(a.bin_dir, "mobilenet-ps"), "--job_name=ps", "--task_index=0"]
            + cluster + shared + ps_flags, stdout=ps_log, stderr=subprocess.STDOUT))
    for i in range(workers):
        path = chief_log_path if i == 0 else os.path.join(log_dir, f"{name}-worker{i}.log")
        with open(path, "w") as log:
            procs.append(subprocess.Popen(
                [os.path.join(a.bin_dir, "mobilenet-worker"), "--job_name=worker",
                 f"--task_index={i}", "--threads=1", "--quiet", f"--epochs={a.epochs}",
                 f"--eval_every_epochs={a.epochs}"] + cluster + shared + a.worker_flag,
                stdout=log, stderr=subprocess.STDOUT))
    deadline = start + a.timeout_secs
    failed = None
    for p in procs:
        try:
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            rc = "timeout"
        if rc != 0 and failed is None:
            failed = (p.args[0], rc)
            for q in procs:
                if q.poll() is None:
                    q.kill()
    seconds = time.monotonic() - start
    with open(ps_log_path) as f:
        ps_log = f.read()
    with open(chief_log_path) as f:
        chief_log = f.read()
    if failed:
        sys.exit(f"{name}: {os.path.basename(failed[0])} ended with {failed[1]}; logs in "
                 f"{log_dir}\n{chief_log[-1500:]}\n{ps_log[-1500:]}")
    m = ACCURACY.search(chief_log)
    if not m:
        sys.exit(f"{name}: no 'Test accuracy:' line in the chief's log:\n{chief_log[-2000:]}")
    pushes, mean, p90, folded = staleness_summary(ps_log)
    return {"workers": workers, "policy": policy, "seed": seed, "accuracy": float(m.group(1)),
            "pushes": pushes, "staleness_mean": mean, "staleness_p90": p90,
            "staleness_folded": folded, "seconds": seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--policies", default="apply,scale,dc,dca")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--lr_decay_factor", type=float, default=0.5)
    p.add_argument("--epochs_per_decay", type=float, default=0.5)
    p.add_argument("--seeds", type=int, default=1, help="seeds 1..N per configuration")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--dc_lambda", type=float, default=0.04, help="of dc (DC-ASGD-c)")
    p.add_argument("--dca_lambda", type=float, default=2, help="of dca (DC-ASGD-a)")
    p.add_argument("--ps_flag", action="append", default=[],
                   help="one more mobilenet-ps flag (repeatable), e.g. --ps_flag=--learning_rate=0.02")
    p.add_argument("--worker_flag", action="append", default=[],
                   help="one more mobilenet-worker flag (repeatable)")
    p.add_argument("--timeout_secs", type=float, default=1800, help="per run")
    p.add_argument("--log_dir", default="", help="keep every process's log here")
    p.add_argument("--json", default="", help="also write the rows as JSON to this file")
    a = p.parse_args()
    workers = [int(w) for w in a.workers.split(",")]
    policies = a.policies.split(",")
    for w in workers:
        if w < 1:
            sys.exit(f"--workers: {w} is not a positive number")
    for policy in policies:
        if policy not in ("apply", "scale", "reject", "dc", "dca"):
            sys.exit(f"--policies: unknown policy {policy!r}")
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="async_scaling.")
    os.makedirs(log_dir, exist_ok=True)

    print(f"alpha {a.alpha}, {a.resolution}x{a.resolution}, {a.epochs} epochs in all per run "
          f"(learning rate x{a.lr_decay_factor} every {a.epochs_per_decay} epochs), 1 PS, "
          f"1 thread per worker, dc lambda {a.dc_lambda}, dca lambda {a.dca_lambda}; "
          f"logs in {log_dir}", flush=True)
    rows = []
    for w in workers:
        for policy in policies:
            for seed in range(1, a.seeds + 1):
                r = run_cluster(a, w, policy, seed, log_dir)
                rows.append(r)
                print(f"  {w} workers, {policy}, seed {seed}: {r['accuracy']:.2f}%, staleness "
                      f"mean {r['staleness_mean']:.2f} p90 {r['staleness_p90']} "
                      f"({r['pushes']} pushes, {r['seconds']:.0f} s)", flush=True)

    print()
    print("| workers | policy | test accuracy | staleness mean | staleness p90 | wall time |")
    print("|---|---|---|---|---|---|")
    for w in workers:
        for policy in policies:
            rs = [r for r in rows if r["workers"] == w and r["policy"] == policy]
            accs = [r["accuracy"] for r in rs]
            acc = f"{statistics.mean(accs):.2f}%"
            if len(accs) > 1:
                acc += " (" + ", ".join(f"{x:.2f}" for x in accs) + ")"
            folded = any(r["staleness_folded"] for r in rs)
            mean = statistics.mean(r["staleness_mean"] for r in rs)
            p90 = max(r["staleness_p90"] for r in rs)
            secs = statistics.mean(r["seconds"] for r in rs)
            print(f"| {w} | {policy} | {acc} | {'>=' if folded else ''}{mean:.2f} | {p90} | "
                  f"{secs:.0f} s |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
