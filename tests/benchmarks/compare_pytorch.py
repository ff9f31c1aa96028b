#!/usr/bin/python3
"""Compares our MobileNet-V1 (build/bin/mobilenet-bench) with the same network in PyTorch.

Both sides run one configuration (width multiplier, resolution, input channels, classes,
batch, threads) on synthetic data and report the median training throughput
(forward + loss + backward, no optimizer step) and inference throughput, plus the peak
resident set size of their own process. Each side runs in a separate process, so each RSS
is its own.

  /usr/bin/python3 tests/benchmarks/compare_pytorch.py --alpha 1.0 --resolution 224 \
      --batch 32 --threads 2 [--bench build/bin/mobilenet-bench] [--json]

Needs PyTorch (Debian's python3-torch, run with /usr/bin/python3).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scaled_channels(base, alpha):
    # Same rule as model/architecture.cc: max(int(base * alpha), 8).
    return max(int(base * alpha + 1e-4), 8)


def build_torch_model(alpha, channels, classes, shallow):
    """MobileNet-V1 as in model/architecture.cc: BN eps 1e-3, ReLU6, no conv bias.

    PyTorch's symmetric padding of 1 gives the same output sizes as TensorFlow's SAME
    padding (and so the same cost); only which border row is padded differs.
    """
    import torch.nn as nn

    def conv_bn(cin, cout, kernel, stride, groups=1):
        return [
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout, eps=1e-3),
            nn.ReLU6(inplace=True),
        ]

    blocks = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)]
    if not shallow:
        blocks += [(1, 512)] * 5
    blocks += [(2, 1024), (1, 1024)]
    layers = []
    c = scaled_channels(32, alpha)
    layers += conv_bn(channels, c, 3, 2)
    for stride, base in blocks:
        out = scaled_channels(base, alpha)
        layers += conv_bn(c, c, 3, stride, groups=c)
        layers += conv_bn(c, out, 1, 1)
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


def median_seconds(warmup, iterations, body):
    for _ in range(warmup):
        body()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_torch(args):
    """Runs in the child process: measures PyTorch and prints one JSON object."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = build_torch_model(args.alpha, args.channels, args.classes, args.shallow)
    model = model.to(memory_format=torch.channels_last)
    images = torch.rand(args.batch, args.channels, args.resolution, args.resolution) * 2 - 1
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.classes, (args.batch,))
    # Counted as the paper counts: convolution and fully-connected weights only.
    paper_params = sum(p.numel() for n, p in model.named_parameters()
                       if n.endswith("weight") and p.dim() > 1)

    model.train()

    def train_step():
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        loss.backward()

    train = median_seconds(args.warmup, args.iterations, train_step)

    model.eval()

    def infer_step():
        with torch.inference_mode():
            model(images)

    infer = median_seconds(args.warmup, args.iterations, infer_step)
    print(json.dumps({
        "torch_version": torch.__version__,
        "params": paper_params,
        "train_step_seconds": train,
        "infer_step_seconds": infer,
        "train_images_per_sec": args.batch / train,
        "infer_images_per_sec": args.batch / infer,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def config_flags(args):
    flags = ["--alpha", str(args.alpha), "--resolution", str(args.resolution),
             "--channels", str(args.channels), "--classes", str(args.classes),
             "--batch", str(args.batch), "--threads", str(args.threads),
             "--warmup", str(args.warmup), "--iterations", str(args.iterations)]
    return flags


def run_json(command, what):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    if result.returncode != 0:
        sys.exit("%s failed (exit %d): %s\n%s" % (what, result.returncode, " ".join(command),
                                                 result.stderr.strip()))
    lines = [l for l in result.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        sys.exit("%s printed no JSON: %s" % (what, result.stdout.strip()))
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shallow", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--bench", default=os.path.join(ROOT, "build", "bin", "mobilenet-bench"),
                        help="path of our mobilenet-bench binary")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("resolution", "channels", "batch", "threads", "iterations"):
        if getattr(args, name) < 1:
            parser.error("--%s must be >= 1, got %d" % (name, getattr(args, name)))
    if args.classes < 2:
        parser.error("--classes must be >= 2, got %d" % args.classes)
    if args.alpha <= 0:
        parser.error("--alpha must be > 0, got %g" % args.alpha)

    if args.torch_child:
        run_torch(args)
        return
    if not os.access(args.bench, os.X_OK):
        sys.exit("mobilenet-bench not found at %s (build it, or pass --bench PATH)" % args.bench)

    shallow = ["--shallow"] if args.shallow else []
    ours = run_json([args.bench, "--json"] + config_flags(args) + shallow, "mobilenet-bench")
    torch = run_json([sys.executable, os.path.abspath(__file__), "--torch-child"] +
                     config_flags(args) + shallow, "PyTorch benchmark")

    config = {k: getattr(args, k) for k in ("alpha", "resolution", "channels", "classes",
                                             "batch", "threads", "shallow", "warmup",
                                             "iterations")}
    ratios = {
        "train_speedup": ours["train_images_per_sec"] / torch["train_images_per_sec"],
        "infer_speedup": ours["infer_images_per_sec"] / torch["infer_images_per_sec"],
        "peak_rss_ratio": ours["peak_rss_bytes"] / torch["peak_rss_bytes"],
    }
    result = {"config": config, "ours": ours, "pytorch": torch, "ratios": ratios}
    if args.json:
        print(json.dumps(result))
        return

    print("MobileNet-V1 alpha %g, %dx%dx%d, %d classes%s, batch %d, %d threads "
          "(median of %d steps)" % (args.alpha, args.resolution, args.resolution, args.channels,
                                    args.classes, " (shallow)" if args.shallow else "",
                                    args.batch, args.threads, args.iterations))
    print("  params as the paper counts: ours %d, PyTorch %d" % (ours["params"], torch["params"]))
    print("  %-24s %12s %12s %10s" % ("", "ours", "PyTorch", "ours/PT"))
    print("  %-24s %12.2f %12.2f %10.2f" % ("training images/s", ours["train_images_per_sec"],
                                           torch["train_images_per_sec"],
                                           ratios["train_speedup"]))
    print("  %-24s %12.2f %12.2f %10.2f" % ("inference images/s", ours["infer_images_per_sec"],
                                           torch["infer_images_per_sec"],
                                           ratios["infer_speedup"]))
    print("  %-24s %12.1f %12.1f %10.2f" % ("peak RSS MiB", ours["peak_rss_bytes"] / 2.0**20,
                                           torch["peak_rss_bytes"] / 2.0**20,
                                           ratios["peak_rss_ratio"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
