#!/usr/bin/python3
"""What transport security costs: mobilenet-transport-bench (one Pull + one Push of the
whole model through 2 parameter servers on loopback, client and servers in one process)
in plaintext, with mutual TLS, and with mutual TLS plus bearer tokens, alternating
--rounds times so that load on a shared machine falls on all alike. Prints the median
seconds per pull + push, GB/s and CPU seconds per iteration (client and servers
together: where the encryption is paid) of each, and the ratios to plaintext.

  /usr/bin/python3 tests/benchmarks/transport_security.py [--bin_dir build/bin]
      [--rounds 5] [--iterations 30] [--alpha 1] [--json]

Certificates come from deploy/make_certs.sh in a temporary folder.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODES = ("plaintext", "mutual TLS", "mutual TLS + tokens")


def flags(mode, certs):
    if mode == "plaintext":
        return []
    out = ["--tls_cert_file=%s/worker-0.crt" % certs, "--tls_key_file=%s/worker-0.key" % certs,
           "--tls_ca_file=%s/ca.crt" % certs, "--server_certs_dir=%s" % certs]
    if mode.endswith("tokens"):
        out.append("--auth_token_file=%s/tokens/worker-0.token" % certs)
    return out


def run(bin_dir, mode, certs, args):
    command = [os.path.join(bin_dir, "mobilenet-transport-bench"), "--json",
               "--iterations=%d" % args.iterations, "--alpha=%g" % args.alpha] + flags(mode, certs)
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.exit("%s failed (%d):\n%s\n%s" % (" ".join(command), out.returncode, out.stdout,
                                              out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    certs = tempfile.mkdtemp(prefix="transport_security_certs_")
    try:
        subprocess.run(["bash", os.path.join(ROOT, "deploy", "make_certs.sh"), certs, "2", "1"],
                       check=True, capture_output=True, timeout=120)
        results = {mode: [] for mode in MODES}
        for r in range(args.rounds):
            for mode in MODES:
                results[mode].append(run(args.bin_dir, mode, certs, args))
                last = results[mode][-1]
                print("round %d %-20s %.4f s  %.2f GB/s  cpu %.4f s  (%s)" %
                      (r + 1, mode, last["median_seconds"], last["effective_gb_per_sec"],
                       last["cpu_seconds_per_iteration"], last.get("transport_security", "?")),
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(certs, ignore_errors=True)

    def median(mode, key):
        return statistics.median(x[key] for x in results[mode])

    summary = {}
    for mode in MODES:
        summary[mode] = {
            "median_seconds": median(mode, "median_seconds"),
            "gb_per_sec": median(mode, "effective_gb_per_sec"),
            "cpu_seconds_per_iteration": median(mode, "cpu_seconds_per_iteration"),
            "median_pull_seconds": median(mode, "median_pull_seconds"),
            "median_push_seconds": median(mode, "median_push_seconds"),
        }
    base = summary["plaintext"]
    for mode in MODES:
        summary[mode]["time_ratio"] = summary[mode]["median_seconds"] / base["median_seconds"]
        summary[mode]["cpu_ratio"] = (summary[mode]["cpu_seconds_per_iteration"] /
                                      base["cpu_seconds_per_iteration"])
    bytes_each_way = results["plaintext"][0]["bytes_each_way"]
    if args.json:
        print(json.dumps({"alpha": args.alpha, "bytes_each_way": bytes_each_way,
                          "rounds": args.rounds, "iterations": args.iterations,
                          "modes": summary}))
        return 0
    print("Pull + push of %.1f MB each way (alpha %g, 2 PS, loopback), medians of %d rounds "
          "x %d iterations:" % (bytes_each_way / 1e6, args.alpha, args.rounds, args.iterations))
    print("%-22s %10s %8s %8s %8s %10s %9s" % ("", "seconds", "pull", "push", "GB/s",
                                              "cpu s/it", "vs plain"))
    for mode in MODES:
        s = summary[mode]
        print("%-22s %10.4f %8.4f %8.4f %8.2f %10.4f %8.2fx" %
              (mode, s["median_seconds"], s["median_pull_seconds"], s["median_push_seconds"],
               s["gb_per_sec"], s["cpu_seconds_per_iteration"], s["time_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
