#!/usr/bin/python3
"""The weight average (--weight_ema_decay) from training to ONNX, with the real binaries.

A short single-process training with the average on writes a checkpoint; then:
  - `mobilenet-ctl export --weights=ema` writes an ONNX model whose logits, computed
    independently by tests/onnx_reference.py (numpy), match `mobilenet-ctl predict
    --weights=ema` on the same input, and differ from the raw weights' (so the check can
    tell the two apart);
  - `mobilenet-ctl eval --weights=ema` evaluates the average (when Fashion-MNIST is
    installed);
  - a checkpoint written with the average off is refused by --weights=ema, naming why.

Usage: weight_average_e2e_test.py --bin_dir BUILD/bin
Exit status: 0 passed, 1 failed, 77 skipped (no onnx/numpy Python modules).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

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


def predict(ctl, checkpoint_dir, weights, batch):
    out = run([ctl, "predict", "--checkpoint=" + checkpoint_dir, "--weights=" + weights,
               "--input=" + batch, "--json"]).stdout
    parsed = json.loads(out)
    check(parsed["weights"] == weights, "predict --weights=%s printed weights %r" %
          (weights, parsed["weights"]))
    return [p["logits"] for p in parsed["predictions"]]


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
        model = os.path.join(work, "ema.onnx")
        exported = run([ctl, "export", "--checkpoint=" + averaged, "--weights=ema",
                        "--output=" + model]).stdout
        check("ema weights" in exported, "export did not name the ema weights: %s" % exported)
        reference = run([sys.executable, os.path.join(HERE, "onnx_reference.py"), model,
                         batch]).stdout
        onnx_logits = np.array(json.loads(reference))
        ema_logits = np.array(predict(ctl, averaged, "ema", batch))
        raw_logits = np.array(predict(ctl, averaged, "raw", batch))
        check(onnx_logits.shape == ema_logits.shape,
              "ONNX logits %s, predict %s" % (onnx_logits.shape, ema_logits.shape))
        worst = float(np.max(np.abs(onnx_logits - ema_logits)))
        check(np.allclose(onnx_logits, ema_logits, rtol=1e-4, atol=1e-5),
              "the ONNX export of the average and predict --weights=ema differ by up to %g" %
              worst)
        gap = float(np.max(np.abs(raw_logits - ema_logits)))
        check(gap > 1e-4, "raw and ema logits are the same (%g apart): the average is not used"
              % gap)
        print("ONNX export of the average matches predict --weights=ema (max |diff| %.2g; "
              "raw weights %.2g away)" % (worst, gap))

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
    except Failure as e:
        print("FAILED: %s" % e)
        return 1
    finally:
        subprocess.run(["rm", "-rf", work])
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
