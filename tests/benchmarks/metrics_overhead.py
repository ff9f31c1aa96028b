#!/usr/bin/python3
"""What Prometheus metrics cost: mobilenet-transport-bench with metrics off and on, side by
side. Each benchmark runs with --metrics and without, alternating (and swapping which goes
first every round) --rounds times, so that load on a shared machine falls on both alike;
prints the medians over the rounds and the ratio on / off.

Benchmarks (--benchmarks, comma-separated):
  transport  one Pull + one Push of the model through --num_ps servers on loopback:
             median seconds (lower is better), GB/s (higher) and CPU seconds per pull +
             push of client and servers together (lower)
  capacity   one full-model push handled by a parameter server core on one thread:
             median apply seconds (lower) and applications/s (higher)

"On" is what mobilenet-ps --metrics_address adds (the endpoint, the core's metrics, the
gRPC interceptor on every call), with every endpoint scraped over HTTP --scrape_hz times a
second while timing (default 10: 150 times a 15 s scrape interval, so the difference bounds
the cost from above). The core counts for its metrics whether they are served or not, so
in capacity mode "on" adds the scrapes taking the core's locks while it applies. Medians of
per-iteration times show a cost paid on every iteration (the interceptor's), hardly one paid
now and then (a scrape overlaps few iterations); CPU seconds per iteration, a mean over the
timed run, includes the scrapes too.

  /usr/bin/python3 tests/benchmarks/metrics_overhead.py [--bin_dir build/bin] \\
      [--rounds 5] [--iterations 30] [--capacity_iterations 200] [--scrape_hz 10] \\
      [--benchmarks transport,capacity] [--json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIDES = ("off", "on")


def run_json(command):
    out = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit("%s failed (%d):\n%s\n%s" % (" ".join(command), out.returncode, out.stdout,
                                              out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(args, side, extra):
    command = [os.path.join(args.bin_dir, "mobilenet-transport-bench"), "--json",
               "--alpha=%g" % args.alpha] + extra
    if side == "on":
        command += ["--metrics", "--metrics_scrape_hz=%g" % args.scrape_hz]
    r = run_json(command)
    # The run must have been what it is counted as.
    if r.get("metrics") is not (side == "on"):
        sys.exit("%s: expected \"metrics\": %s in %s" % (" ".join(command), side == "on", r))
    if side == "on" and args.scrape_hz > 0 and r["metrics_scrapes"] < 1:
        sys.exit("%s: no scrape was made while timing: %s" % (" ".join(command), r))
    return r


def transport(args, side):
    r = bench(args, side, ["--num_ps=%d" % args.num_ps, "--iterations=%d" % args.iterations])
    return {"transport_seconds": r["median_seconds"],
            "transport_gb_per_sec": r["effective_gb_per_sec"],
            "transport_cpu_seconds": r["cpu_seconds_per_iteration"],
            "transport_scrapes": r["metrics_scrapes"]}


def capacity(args, side):
    r = bench(args, side, ["--capacity", "--iterations=%d" % args.capacity_iterations])
    return {"capacity_seconds": r["median_apply_seconds"],
            "capacity_per_sec": r["applications_per_sec"],
            "capacity_scrapes": r["metrics_scrapes"]}


BENCHMARKS = {"transport": transport, "capacity": capacity}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=30,
                   help="timed iterations per transport run")
    # An apply takes a few ms: this many keep a run long enough for several scrapes.
    p.add_argument("--capacity_iterations", type=int, default=200,
                   help="timed iterations per capacity run")
    p.add_argument("--scrape_hz", type=float, default=10,
                   help="scrapes of each /metrics per second while timing, metrics on")
    p.add_argument("--num_ps", type=int, default=2, help="parameter servers (transport)")
    p.add_argument("--alpha", type=float, default=1.0, help="MobileNet width multiplier")
    p.add_argument("--benchmarks", default="transport,capacity")
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    args = p.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be >= 1")
    names = [n for n in args.benchmarks.split(",") if n]
    for name in names:
        if name not in BENCHMARKS:
            sys.exit("unknown benchmark %r; expected some of %s" % (name, ", ".join(BENCHMARKS)))
    samples = {side: {} for side in SIDES}
    for r in range(args.rounds):
        for name in names:
            # Swap the order every round: neither side always runs first.
            for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
                figures = BENCHMARKS[name](args, side)
                for key, value in figures.items():
                    samples[side].setdefault(key, []).append(value)
                if not args.json:
                    print("round %d %-9s metrics %-3s: %s" % (
                        r + 1, name, side, ", ".join("%s %.4g" % kv for kv in figures.items())),
                        flush=True)
    result = {"rounds": args.rounds, "iterations": args.iterations,
              "capacity_iterations": args.capacity_iterations, "scrape_hz": args.scrape_hz,
              "alpha": args.alpha, "num_ps": args.num_ps}
    for key in samples["off"]:
        off, on = statistics.median(samples["off"][key]), statistics.median(samples["on"][key])
        result[key] = {"off": off, "on": on, "on_over_off": on / off if off else None,
                       "off_runs": samples["off"][key], "on_runs": samples["on"][key]}
    if args.json:
        print(json.dumps(result))
        return
    print("\nmedians of %d alternating rounds (%d transport, %d capacity iterations each; "
          "metrics on: scraped %g times/s)" % (args.rounds, args.iterations,
                                               args.capacity_iterations, args.scrape_hz))
    for key, r in result.items():
        if not isinstance(r, dict):
            continue
        ratio = "%.3f" % r["on_over_off"] if r["on_over_off"] is not None else "-"
        print("  %-24s off %10.4g   on %10.4g   on/off %s" % (key, r["off"], r["on"], ratio))


if __name__ == "__main__":
    main()
