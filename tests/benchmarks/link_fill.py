#!/usr/bin/python3
"""How much of a shaped link one gRPC connection fills: the measurement behind the choice of
one connection per parameter server.

For each --link_mbit rate, a fresh network namespace whose loopback is shaped with tc tbf
to that rate, and inside it `mobilenet-transport-bench --num_ps=1 --wire_dtype=all`: one
parameter server, one client, one channel (one TCP connection, one HTTP/2 stream per
call), a training pull of the whole model and then a push of the whole model's gradients
per iteration, in every wire format. The pull and the push run one after the other, so
the link carries one direction at a time and the shaped loopback (one qdisc for both
directions) gives each its full rate. Reported per format and direction: the payload
rate (the bytes the server counted on the wire for one direction, half of a step's, over
the median seconds) as a fraction of the link's rate.

tbf counts whole packets (TCP/IP headers included) against the rate, so a connection
that fills the link shows a little under 100% of payload; the bucket (10 ms at the rate,
at least 128 KiB) lets a short call run a little over.

  /usr/bin/python3 tests/benchmarks/link_fill.py [--bin_dir build/bin]
      [--link_mbit 100,1000] [--iterations 5] [--alpha 1 --resolution 224 ...]

Root only (namespaces, tc). The namespace is named mobilenet-linkfill and removed on every
exit. This kernel has no netem, so the links add no latency: the figures are for a
switch-local link, where the bandwidth-delay product is small.
"""

import argparse
import json
import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETNS = "mobilenet-linkfill"


def run(*command):
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {out.stderr.strip()}")
    return out.stdout


def namespace_down():
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


def shaped_namespace(mbit):
    """A namespace whose loopback sends at most `mbit` Mbit/s."""
    namespace_down()
    run("ip", "netns", "add", NETNS)
    run("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    burst = max(int(mbit * 1e6 / 8 * 0.010), 128 * 1024)
    run("ip", "netns", "exec", NETNS, "tc", "qdisc", "add", "dev", "lo", "root", "tbf",
        "rate", f"{mbit:g}mbit", "burst", str(burst), "latency", "200ms")


def measure(a, mbit):
    shaped_namespace(mbit)
    try:
        out = run("ip", "netns", "exec", NETNS,
                  os.path.join(a.bin_dir, "mobilenet-transport-bench"), "--num_ps=1",
                  "--wire_dtype=all", f"--iterations={a.iterations}", "--warmup=1",
                  f"--alpha={a.alpha:g}", f"--resolution={a.resolution}",
                  f"--channels={a.channels}", f"--classes={a.classes}", "--json")
    finally:
        namespace_down()
    bench = json.loads(out)
    rows = []
    for f in bench["formats"]:
        # A pull's response and a push's request carry the same payload (weights or
        # gradients in the format, the float32 statistics): half of a step's bytes each.
        one_way = f["wire_bytes_per_iteration"] / 2
        rows.append({
            "link_mbit": mbit, "wire_dtype": f["wire_dtype"], "mb_each_way": one_way / 1e6,
            "pull_seconds": f["median_pull_seconds"], "push_seconds": f["median_push_seconds"],
            "pull_fill": one_way * 8 / f["median_pull_seconds"] / (mbit * 1e6),
            "push_fill": one_way * 8 / f["median_push_seconds"] / (mbit * 1e6)})
    return bench["model"], rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--link_mbit", default="100,1000",
                   help="comma-separated link rates, Mbit/s")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    try:
        rates = [float(r) for r in a.link_mbit.split(",") if r.strip()]
    except ValueError:
        p.error(f"--link_mbit: expected numbers, got '{a.link_mbit}'")
    if not rates or any(r <= 0 for r in rates):
        p.error("--link_mbit: give one or more rates > 0")
    if a.iterations < 1:
        p.error("--iterations must be >= 1")
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace and tc)")
    if not os.access(os.path.join(a.bin_dir, "mobilenet-transport-bench"), os.X_OK):
        sys.exit(f"no mobilenet-transport-bench in {a.bin_dir} (build first, or --bin_dir)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows, model = [], ""
    try:
        for mbit in rates:
            model, measured = measure(a, mbit)
            rows += measured
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    finally:
        namespace_down()
    if a.json:
        print(json.dumps({"model": model, "iterations": a.iterations, "rows": rows}))
        return
    print(f"model {model}; 1 parameter server, 1 connection; medians of {a.iterations} "
          f"pulls and pushes per format")
    print(f"{'link':>10} {'format':>6} {'MB each way':>12} {'pull s':>8} {'pull fill':>10} "
          f"{'push s':>8} {'push fill':>10}")
    for r in rows:
        print(f"{r['link_mbit']:>5g} Mbit {r['wire_dtype']:>6} {r['mb_each_way']:>12.2f} "
              f"{r['pull_seconds']:>8.3f} {100 * r['pull_fill']:>9.1f}% "
              f"{r['push_seconds']:>8.3f} {100 * r['push_fill']:>9.1f}%")


if __name__ == "__main__":
    main()
