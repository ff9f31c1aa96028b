#!/usr/bin/python3
"""Distributed overhead: the images/s of 1 parameter server + 2 workers with 1 compute
thread each, against single-process training with 2 threads, on the same model and
synthetic data, measured side by side in one run (alternating, --repeats times). The
cluster runs twice per repeat: with communication overlapping computation (the
workers' default) and with --overlap_communication=false (pull, compute, push in turn).

--link_gbit R (root only) puts the parameter server in its own network namespace behind
a veth pair shaped to R Gbit/s each way (tc tbf on both ends), so that moving the
weights and gradients takes time, as across a real network: what overlapping the
communication can hide. (This kernel has no netem for added latency.)

  /usr/bin/python3 tests/benchmarks/distributed_overhead.py [--bin_dir build/bin]
      [--alpha 0.5 --resolution 56 --channels 1 --batch 64 --examples 6400 --repeats 3]

The cluster's rate is the examples both workers trained divided by the wall time from
the first worker's start to the last one's end of training (each worker reports its own
training time; the slower one bounds the run). Prints the medians and their ratio (the
issue's floor is 0.85), and JSON with --json.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINED = re.compile(r"trained (\d+) steps \((\d+) examples\) in \S+, ([0-9.]+) images/s",
                     re.IGNORECASE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_flags(a):
    return [f"--alpha={a.alpha}", f"--resolution={a.resolution}", f"--channels={a.channels}"]


def parse_trained(text, who):
    m = TRAINED.search(text)
    if not m:
        sys.exit(f"{who}: no 'Trained ... images/s' line in its output:\n{text[-2000:]}")
    return int(m.group(2)), float(m.group(3))


def single_process(a):
    # Epochs are of the synthetic set of --examples examples.
    out = subprocess.run(
        [os.path.join(a.bin_dir, "mobilenet-worker"), "--synthetic", "--quiet",
         f"--threads=2", f"--batch_size={a.batch}", "--epochs=1",
         f"--synthetic_examples={a.examples}"] + model_flags(a),
        capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"single process failed:\n{out.stdout}\n{out.stderr}")
    examples, rate = parse_trained(out.stdout, "single process")
    return rate


NETNS = "mobilenet-bench-ps"
HOST_IP, PS_IP = "10.213.47.1", "10.213.47.2"


def run(*command):
    subprocess.run(command, check=True, capture_output=True, text=True)


def shaped_link_up(gbit):
    """A namespace NETNS holding the PS end of a veth pair (PS_IP), the other end here
    (HOST_IP), both ends sending at most `gbit` Gbit/s."""
    shaped_link_down()
    run("ip", "netns", "add", NETNS)
    run("ip", "link", "add", "mnb-host", "type", "veth", "peer", "name", "mnb-ps")
    run("ip", "link", "set", "mnb-ps", "netns", NETNS)
    run("ip", "addr", "add", f"{HOST_IP}/30", "dev", "mnb-host")
    run("ip", "link", "set", "mnb-host", "up")
    run("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{PS_IP}/30", "dev", "mnb-ps")
    run("ip", "netns", "exec", NETNS, "ip", "link", "set", "mnb-ps", "up")
    run("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    shape = ["root", "tbf", "rate", f"{gbit * 1000:g}mbit", "burst", "1mb", "latency", "200ms"]
    run("tc", "qdisc", "add", "dev", "mnb-host", *shape)
    run("ip", "netns", "exec", NETNS, "tc", "qdisc", "add", "dev", "mnb-ps", *shape)


def shaped_link_down():
    subprocess.run(["ip", "link", "del", "mnb-host"], capture_output=True)
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


def cluster(a, overlap):
    ports = set()
    while len(ports) < 3:  # workers listen on nothing, so the kernel may repeat a port
        ports.add(free_port())
    ps_port, *worker_ports = sorted(ports)
    ps = f"{PS_IP if a.link_gbit > 0 else '127.0.0.1'}:{ps_port}"
    workers = [f"127.0.0.1:{p}" for p in worker_ports]
    common = [f"--ps_hosts={ps}", f"--worker_hosts={','.join(workers)}"] + model_flags(a)
    ps_log = tempfile.TemporaryFile(mode="w+")
    in_netns = ["ip", "netns", "exec", NETNS] if a.link_gbit > 0 else []
    ps_proc = subprocess.Popen(
        in_netns + [os.path.join(a.bin_dir, "mobilenet-ps"), "--job_name=ps", "--task_index=0",
         "--classes=10", f"--examples_per_epoch={a.examples}", "--log_every_secs=0"] + common,
        stdout=ps_log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        if ps_proc.poll() is not None:
            ps_log.seek(0)
            sys.exit(f"parameter server exited ({ps_proc.returncode}):\n{ps_log.read()[-3000:]}")
        procs = [subprocess.Popen(
            [os.path.join(a.bin_dir, "mobilenet-worker"), "--job_name=worker",
             f"--task_index={i}", "--synthetic", "--quiet", "--threads=1",
             f"--batch_size={a.batch}", "--epochs=1", f"--synthetic_examples={a.examples}",
             "--ps_patience_secs=60", f"--overlap_communication={str(overlap).lower()}"]
            + common,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
        outputs = [p.communicate(timeout=1800)[0] for p in procs]
        for i, (p, out) in enumerate(zip(procs, outputs)):
            if p.returncode != 0:
                sys.exit(f"worker {i} failed:\n{out[-3000:]}")
        total_examples = 0
        slowest = 0.0
        for i, out in enumerate(outputs):
            examples, rate = parse_trained(out, f"worker {i}")
            total_examples += examples
            slowest = max(slowest, examples / rate)
        return total_examples / slowest
    finally:
        ps_proc.terminate()
        try:
            ps_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ps_proc.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--resolution", type=int, default=56)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--examples", type=int, default=6400,
                   help="examples per run (each cluster worker trains half)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--link_gbit", type=float, default=0,
                   help="shape the workers' link to the PS to this many Gbit/s (root; see "
                        "above); 0: loopback")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.link_gbit > 0:
        if os.geteuid() != 0:
            sys.exit("--link_gbit needs root (network namespaces and tc)")
        shaped_link_up(a.link_gbit)
    try:
        measure(a)
    finally:
        if a.link_gbit > 0:
            shaped_link_down()


def measure(a):
    single, dist, serial = [], [], []
    for r in range(a.repeats):
        single.append(single_process(a))
        dist.append(cluster(a, overlap=True))
        serial.append(cluster(a, overlap=False))
        if not a.json:
            print(f"run {r + 1}: single process (2 threads) {single[-1]:.1f} img/s, "
                  f"1 PS + 2 workers (1 thread each) {dist[-1]:.1f} img/s overlapped, "
                  f"{serial[-1]:.1f} img/s in turn", flush=True)
    s, d, t = statistics.median(single), statistics.median(dist), statistics.median(serial)
    result = {"alpha": a.alpha, "resolution": a.resolution, "channels": a.channels,
              "batch": a.batch, "link_gbit": a.link_gbit, "single_process_images_per_sec": s,
              "cluster_images_per_sec": d, "ratio": d / s,
              "cluster_in_turn_images_per_sec": t, "in_turn_ratio": t / s, "runs": a.repeats}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"median: single process {s:.1f} img/s, cluster {d:.1f} img/s overlapped "
              f"(ratio {d / s:.2f}, floor 0.85), {t:.1f} img/s in turn (ratio {t / s:.2f})")


if __name__ == "__main__":
    main()
