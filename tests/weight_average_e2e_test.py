#!/usr/bin/python3
"""The weight average (--weight_ema_decay) from training to ONNX, with the real binaries.

Single process: a short training with the average on writes a checkpoint; then:
  - `mobilenet-ctl export --weights=ema` writes an ONNX model whose logits, computed
    independently by tests/onnx_reference.py (numpy), match `mobilenet-ctl predict
    --weights=ema` on the same input, and differ from the raw weights' (so the check can
    tell the two apart);
  - `mobilenet-ctl eval --weights=ema` evaluates the average (when Fashion-MNIST is
    installed);
  - a checkpoint written with the average off is refused by --weights=ema, naming why.
Cluster (one mobilenet-ps keeping the average, two workers): once worker 1 has trained,
  - the server's Status and /metrics report the decay, and the export of --weights=ema
    read with --ps_hosts matches predict --weights=ema read the same way;
  - the chief (on Fashion-MNIST, when installed) evaluates both and prints both final
    lines; the servers' final checkpoint then evaluates with --weights=ema, and the
    chief's own ONNX export (--export_onnx) holds exactly that checkpoint's average.

Usage: weight_average_e2e_test.py --bin_dir BUILD/bin
Exit status: 0 passed, 1 failed, 77 skipped (no onnx/numpy Python modules).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = "/usr/share/datasets/fashion-mnist"
MODEL_FLAGS = ["--alpha=0.25", "--resolution=32", "--channels=1"]


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def run(command, expect_ok=True):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if expect_ok and result.returncode != 0:
        raise Failure("%s exited %d:\n%s%s" % (" ".join(command), result.returncode,
                                               result.stdout, result.stderr))
    return result


def train(bin_dir, checkpoint_dir, weight_ema_decay):
    run([os.path.join(bin_dir, "mobilenet-worker")] + MODEL_FLAGS +
        ["--synthetic", "--synthetic_examples=256", "--epochs=1", "--batch_size=32", "--quiet",
         "--weight_ema_decay=%g" % weight_ema_decay, "--checkpoint_dir=" + checkpoint_dir])


def free_ports(count):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def predict(ctl, source, weights, batch):
    """`source`: --checkpoint=... or --ps_hosts=..."""
    if not source.startswith("--"):
        source = "--checkpoint=" + source
    out = run([ctl, "predict", source, "--weights=" + weights, "--input=" + batch,
               "--json"]).stdout
    parsed = json.loads(out)
    check(parsed["weights"] == weights, "predict --weights=%s printed weights %r" %
          (weights, parsed["weights"]))
    return [p["logits"] for p in parsed["predictions"]]


def compare_export_with_predict(ctl, source, batch, model):
    """Exports --weights=ema from `source` and checks the ONNX model's logits (numpy
    reference) against predict --weights=ema's and away from the raw weights'."""
    import numpy as np
    exported = run([ctl, "export", source, "--weights=ema", "--output=" + model]).stdout
    check("ema weights" in exported, "export did not name the ema weights: %s" % exported)
    reference = run([sys.executable, os.path.join(HERE, "onnx_reference.py"), model,
                     batch]).stdout
    onnx_logits = np.array(json.loads(reference))
    ema_logits = np.array(predict(ctl, source, "ema", batch))
    raw_logits = np.array(predict(ctl, source, "raw", batch))
    check(onnx_logits.shape == ema_logits.shape,
          "ONNX logits %s, predict %s" % (onnx_logits.shape, ema_logits.shape))
    worst = float(np.max(np.abs(onnx_logits - ema_logits)))
    check(np.allclose(onnx_logits, ema_logits, rtol=1e-4, atol=1e-5),
          "the ONNX export of the average and predict --weights=ema differ by up to %g" % worst)
    gap = float(np.max(np.abs(raw_logits - ema_logits)))
    check(gap > 1e-4, "raw and ema logits are the same (%g apart): the average is not used" %
          gap)
    print("%s: the ONNX export of the average matches predict --weights=ema (max |diff| %.2g; "
          "raw weights %.2g away)" % (source, worst, gap))


def onnx_tensors(path):
    """{initializer name: numpy array} of an ONNX model."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def cluster_check(bin_dir, work):
    import numpy as np
    ctl = os.path.join(bin_dir, "mobilenet-ctl")
    ps_port, metrics_port, w0, w1 = free_ports(4)
    ps_hosts = "127.0.0.1:%d" % ps_port
    cluster = ["--ps_hosts=" + ps_hosts,
               "--worker_hosts=127.0.0.1:%d,127.0.0.1:%d" % (w0, w1)]
    shared = ["--alpha=0.25", "--resolution=28", "--channels=1", "--weight_ema_decay=0.9"]
    checkpoints = os.path.join(work, "ps_checkpoints")
    ps_log = open(os.path.join(work, "ps.log"), "w")
    ps = subprocess.Popen([os.path.join(bin_dir, "mobilenet-ps"), "--job_name=ps",
                           "--task_index=0", "--checkpoint_dir=" + checkpoints,
                           "--metrics_address=127.0.0.1:%d" % metrics_port] + cluster + shared,
                          stdout=ps_log, stderr=subprocess.STDOUT)
    try:
        worker = [os.path.join(bin_dir, "mobilenet-worker"), "--job_name=worker", "--threads=1",
                  "--batch_size=32", "--quiet"] + cluster + shared
        # Worker 1 (not the chief) trains and finishes; the server waits for the chief.
        run(worker + ["--task_index=1", "--synthetic", "--synthetic_examples=512", "--epochs=1"])
        status = json.loads(run([ctl, "status", "--ps_hosts=" + ps_hosts, "--json"]).stdout)
        check(abs(status["summary"]["weight_ema_decay"] - 0.9) < 1e-6,
              "status: weight_ema_decay %r" % status["summary"]["weight_ema_decay"])
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port,
                                         timeout=10).read().decode()
        decay = [float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("mobilenet_ps_weight_ema_decay ")]
        check(len(decay) == 1 and abs(decay[0] - 0.9) < 1e-6,
              "/metrics: mobilenet_ps_weight_ema_decay %r, expected 0.9 (float)" % decay)
        batch = os.path.join(work, "batch28.npy")
        np.save(batch, np.random.RandomState(6).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32))
        compare_export_with_predict(ctl, "--ps_hosts=" + ps_hosts, batch,
                                    os.path.join(work, "cluster_ema.onnx"))

        if not os.path.exists(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")):
            print("Fashion-MNIST not installed: the chief's evaluation is not checked")
            return
        chief_onnx = os.path.join(work, "chief.onnx")
        chief = run(worker + ["--task_index=0", "--epochs=0.02", "--eval_every_epochs=0",
                              "--eval_examples=500", "--export_onnx=" + chief_onnx]).stdout
        lines = chief.splitlines()
        final = [i for i, line in enumerate(lines) if line.startswith("Test accuracy: ")]
        check(len(final) == 1, "chief: no final 'Test accuracy: ...' line:\n%s" % chief)
        check(final[0] + 1 < len(lines) and
              lines[final[0] + 1].startswith("Weight average: test accuracy "),
              "chief: no 'Weight average: ...' line after the final one:\n%s" % chief)
        print("chief: %s / %s" % (lines[final[0]], lines[final[0] + 1]))
        ps.wait(timeout=120)
        check(ps.returncode == 0, "mobilenet-ps exited %d" % ps.returncode)
        out = json.loads(run([ctl, "eval", "--checkpoint=" + checkpoints, "--weights=ema",
                              "--json"]).stdout)
        check(out["weights"] == "ema" and out["examples"] == 10000, "eval: %r" % out)
        print("the servers' final checkpoint evaluates with --weights=ema: accuracy %.4f at "
              "global step %d" % (out["accuracy"], out["global_step"]))
        # The chief's export is of the average: the same tensors as the final checkpoint's
        # average exported by mobilenet-ctl, and not the raw weights.
        check("ONNX model: %s (the weight average)" % chief_onnx in chief,
              "chief: no 'ONNX model: ... (the weight average)' line:\n%s" % chief)
        exported = {}
        for weights in ("ema", "raw"):
            path = os.path.join(work, "final_%s.onnx" % weights)
            run([ctl, "export", "--checkpoint=" + checkpoints, "--weights=" + weights,
                 "--output=" + path])
            exported[weights] = onnx_tensors(path)
        chief_tensors = onnx_tensors(chief_onnx)
        check(chief_tensors.keys() == exported["ema"].keys(),
              "the chief's ONNX model has other tensors than mobilenet-ctl's export")
        for name, values in chief_tensors.items():
            check(np.array_equal(values, exported["ema"][name]),
                  "the chief's export differs from the final average in %s" % name)
        check(any(not np.array_equal(v, exported["raw"][k]) for k, v in chief_tensors.items()),
              "the chief's export equals the raw weights too: the check cannot tell them apart")
        print("the chief's ONNX model holds the final weight average (%d tensors equal to "
              "mobilenet-ctl export --weights=ema of the final checkpoint)" % len(chief_tensors))
    finally:
        if ps.poll() is None:
            ps.kill()
            ps.wait()
        ps_log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    args = parser.parse_args()
    try:
        import numpy as np
        import onnx  # noqa: F401 (onnx_reference.py needs it)
    except ImportError as e:
        print("skipping: %s (python3-numpy, python3-onnx)" % e)
        return SKIP
    ctl = os.path.join(args.bin_dir, "mobilenet-ctl")
    work = tempfile.mkdtemp(prefix="weight_average_e2e_")
    try:
        averaged = os.path.join(work, "averaged")
        train(args.bin_dir, averaged, 0.9)

        batch = os.path.join(work, "batch.npy")
        np.save(batch, np.random.RandomState(5).uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32))
        compare_export_with_predict(ctl, "--checkpoint=" + averaged, batch,
                                    os.path.join(work, "ema.onnx"))

        if os.path.exists(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")):
            out = run([ctl, "eval", "--checkpoint=" + averaged, "--weights=ema", "--json"]).stdout
            result = json.loads(out)
            check(result["weights"] == "ema" and result["examples"] == 10000,
                  "eval --weights=ema: %s" % out)
            print("eval --weights=ema: accuracy %.4f at global step %d" %
                  (result["accuracy"], result["global_step"]))

        plain = os.path.join(work, "plain")
        train(args.bin_dir, plain, 0)
        refused = run([ctl, "predict", "--checkpoint=" + plain, "--weights=ema",
                       "--input=" + batch], expect_ok=False)
        check(refused.returncode != 0 and "holds no weight average" in refused.stderr,
              "predict --weights=ema of a checkpoint without the average: exit %d, %s" %
              (refused.returncode, refused.stderr))
        print("a checkpoint without the average is refused: %s" % refused.stderr.strip())

        cluster_check(args.bin_dir, work)
    except Failure as e:
        print("FAILED: %s" % e)
        return 1
    finally:
        subprocess.run(["rm", "-rf", work])
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
