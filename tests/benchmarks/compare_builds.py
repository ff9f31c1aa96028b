#!/usr/bin/python3
"""Two builds of the project measured side by side, for "no regression" claims: each
benchmark runs against build A, then build B, alternating, --rounds times, so that load
on a shared machine falls on both alike; prints the medians and the ratio B / A.

Benchmarks (--benchmarks, comma-separated):
  transport   mobilenet-transport-bench: one Pull + one Push of the 1.0 model through
              2 PS on loopback; median seconds (lower is better) and GB/s
  capacity    mobilenet-transport-bench --capacity: one full-model push handled by a PS
              core; median seconds (lower is better) and pushes/s
  distributed tests/benchmarks/distributed_overhead.py --repeats 1: images/s of
              1 PS + 2 workers (overlapped) and of single-process training (higher is
              better)

  /usr/bin/python3 tests/benchmarks/compare_builds.py --a /tmp/old/bin --b build/bin \\
      [--rounds 5] [--benchmarks transport,capacity,distributed] [--json]

Build A's binaries can come from any earlier commit, e.g.
  git worktree add /tmp/old <commit> && BUILD_DIR=/tmp/old/build /tmp/old/deploy/build.sh
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_json(command):
    out = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit("%s failed (%d):\n%s\n%s" % (" ".join(command), out.returncode, out.stdout,
                                              out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def transport(bin_dir, iterations):
    r = run_json([os.path.join(bin_dir, "mobilenet-transport-bench"),
                  "--iterations=%d" % iterations, "--json"])
    return {"transport_seconds": r["median_seconds"], "transport_gb_per_sec": r["effective_gb_per_sec"]}


def capacity(bin_dir, iterations):
    r = run_json([os.path.join(bin_dir, "mobilenet-transport-bench"), "--capacity",
                  "--iterations=%d" % iterations, "--json"])
    return {"capacity_seconds": r["median_apply_seconds"],
            "capacity_per_sec": r["applications_per_sec"]}


def distributed(bin_dir, iterations):
    r = run_json(["/usr/bin/python3",
                  os.path.join(ROOT, "tests", "benchmarks", "distributed_overhead.py"),
                  "--bin_dir", bin_dir, "--repeats", "1", "--json"])
    return {"cluster_images_per_sec": r["cluster_images_per_sec"],
            "single_images_per_sec": r["single_process_images_per_sec"]}


BENCHMARKS = {"transport": transport, "capacity": capacity, "distributed": distributed}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="bin folder of build A (before)")
    p.add_argument("--b", required=True, help="bin folder of build B (after)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=30,
                   help="timed iterations per transport/capacity run")
    p.add_argument("--benchmarks", default="transport,capacity,distributed")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    names = [n for n in a.benchmarks.split(",") if n]
    for name in names:
        if name not in BENCHMARKS:
            sys.exit("unknown benchmark %r; expected some of %s" % (name, ", ".join(BENCHMARKS)))
    samples = {"a": {}, "b": {}}
    for r in range(a.rounds):
        for name in names:
            for side in ("a", "b"):
                figures = BENCHMARKS[name](getattr(a, side), a.iterations)
                for key, value in figures.items():
                    samples[side].setdefault(key, []).append(value)
                if not a.json:
                    print("round %d %s %s: %s" % (r + 1, name, side.upper(),
                                                  ", ".join("%s %.4g" % kv for kv in figures.items())),
                          flush=True)
    result = {}
    for key in samples["a"]:
        ma, mb = statistics.median(samples["a"][key]), statistics.median(samples["b"][key])
        result[key] = {"a": ma, "b": mb, "b_over_a": mb / ma, "a_runs": samples["a"][key],
                       "b_runs": samples["b"][key]}
    if a.json:
        print(json.dumps(result))
        return
    print("\nmedians of %d alternating rounds (A = %s, B = %s)" % (a.rounds, a.a, a.b))
    for key, r in result.items():
        print("  %-24s A %10.4g   B %10.4g   B/A %.3f" % (key, r["a"], r["b"], r["b_over_a"]))


if __name__ == "__main__":
    main()
