#!/usr/bin/env python3
"""Training on image folders and CIFAR binaries gives what training on the IDX files gives.

A subset of Fashion-MNIST (the first 3000 training and 500 test images of each class) is
written as IDX files, sorted by class, and `mobilenet-ctl convert-data` turns them into a
PNG folder, a JPEG folder (quality 95) and CIFAR-10 binaries. Sorted by class, the IDX files
number their images as the folders do (by class, then file name), so every format is cut
into the same shard and shuffled alike. mobilenet-worker then trains the same small model
for four epochs on each, single process, with the pad-and-crop preprocessing and the same
normalization for all (the folders' default would be the Inception recipe):
- PNG is lossless, so its run must give exactly the IDX run's accuracy (same seed);
- JPEG and CIFAR (which centres the 28x28 images on black 32x32 RGB ones, the model taking
  3 channels) change the pixels, so training takes another path: the mean accuracy of
  three seeds must be within 1 point of the IDX files' mean over the same seeds (one
  seed's run varies by about +-0.8 points here, too much for one run to tell).
Last, a 2 PS + 2 worker cluster trains one epoch on the PNG folder with its default
(Inception) preprocessing and the chief evaluates every test image. Skipped (77) without
Fashion-MNIST.

    tests/image_data_e2e_test.py --bin_dir build/bin [--keep]
"""

import argparse
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (DATA_DIR, SKIP, Failure, check, die_with_driver,  # noqa: E402
                        free_ports, listen_flags)

TRAIN_PER_CLASS = 3000
TEST_PER_CLASS = 500
TEST_EXAMPLES = 10 * TEST_PER_CLASS
TOLERANCE_POINTS = 1.0
# Both the model and its schedule: about 10 s a run on 2 quiet cores.
MODEL_FLAGS = ["--shallow", "--alpha=0.25", "--resolution=28"]
SEEDS = (3, 4, 5)
TRAIN_FLAGS = ["--epochs=4", "--batch_size=32", "--threads=2", "--optimizer=momentum",
               "--learning_rate=0.05", "--lr_decay=cosine", "--lr_cosine_epochs=4",
               "--eval_every_epochs=4", "--quiet"]
# The same preprocessing and normalization for every format.
SAME_PREPROCESSING = ["--preprocessing=pad_crop", "--mean=0.2860", "--std=0.3530"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        size = rows * cols
        return [data[16 + i * size:16 + (i + 1) * size] for i in range(count)], (rows, cols)
    return list(data[8:8 + count]), None


def write_subset(split, per_class, out_dir):
    """The first `per_class` images of each class of `split`, sorted by class (stable)."""
    prefix = "train" if split == "train" else "t10k"
    images, (rows, cols) = read_idx(os.path.join(DATA_DIR, prefix + "-images-idx3-ubyte.gz"))
    labels, _ = read_idx(os.path.join(DATA_DIR, prefix + "-labels-idx1-ubyte.gz"))
    chosen = {c: [] for c in range(10)}
    for image, label in zip(images, labels):
        if len(chosen[label]) < per_class:
            chosen[label].append(image)
    out_images = [image for c in range(10) for image in chosen[c]]
    out_labels = [c for c in range(10) for _ in chosen[c]]
    with open(os.path.join(out_dir, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(out_images), rows, cols))
        f.write(b"".join(out_images))
    with open(os.path.join(out_dir, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(out_labels)))
        f.write(bytes(out_labels))


def run(command, log_path, timeout):
    started = time.time()
    with open(log_path, "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                              preexec_fn=die_with_driver).returncode
    output = open(log_path, errors="replace").read()
    check(code == 0, "%s exited %d:\n%s" % (" ".join(command), code, output[-3000:]))
    return output, time.time() - started


def accuracy_of(output, what):
    for line in output.splitlines():
        if line.startswith("Test accuracy: "):
            fields = line.split()
            percent = float(fields[2].rstrip("%"))
            correct, examples = fields[3].strip("(),").split("/")
            check(int(examples) == TEST_EXAMPLES, "%s evaluated %s test examples, expected %d" %
                  (what, examples, TEST_EXAMPLES))
            return percent
    raise Failure("%s: no 'Test accuracy' line in:\n%s" % (what, output[-3000:]))


def train_single(bin_dir, run_dir, name, data_dir, seed, extra):
    command = ([os.path.join(bin_dir, "mobilenet-worker"), "--data_dir=" + data_dir,
                "--seed=%d" % seed] + MODEL_FLAGS + TRAIN_FLAGS + extra)
    output, seconds = run(command, os.path.join(run_dir, "%s_seed%d.log" % (name, seed)),
                          timeout=240)
    accuracy = accuracy_of(output, name)
    print("%-6s seed %d %6.2f%%  (%.0f s)" % (name, seed, accuracy, seconds), flush=True)
    return accuracy, output


def mean(values):
    return sum(values) / len(values)


def train_cluster(bin_dir, run_dir, data_dir):
    ports = free_ports(4)
    ps_hosts = ",".join("127.0.0.1:%d" % p for p in ports[:2])
    worker_hosts = ",".join("127.0.0.1:%d" % p for p in ports[2:])
    processes = []
    try:
        for task in range(2):
            address = "127.0.0.1:%d" % ports[task]
            log = open(os.path.join(run_dir, "ps%d.log" % task), "w")
            processes.append(subprocess.Popen(
                [os.path.join(bin_dir, "mobilenet-ps"), "--ps_hosts=" + ps_hosts,
                 "--worker_hosts=" + worker_hosts, "--job_name=ps", "--task_index=%d" % task] +
                MODEL_FLAGS + ["--seed=3", "--optimizer=momentum", "--learning_rate=0.05"] +
                listen_flags(address), stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_driver))
        workers = []
        for task in range(2):
            log = open(os.path.join(run_dir, "worker%d.log" % task), "w")
            workers.append(subprocess.Popen(
                [os.path.join(bin_dir, "mobilenet-worker"), "--ps_hosts=" + ps_hosts,
                 "--worker_hosts=" + worker_hosts, "--job_name=worker",
                 "--task_index=%d" % task, "--data_dir=" + data_dir, "--epochs=1",
                 "--threads=1", "--batch_size=32", "--seed=3", "--quiet"] + MODEL_FLAGS,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_driver))
        processes += workers
        deadline = time.time() + 240
        for worker in workers:
            worker.wait(timeout=max(1, deadline - time.time()))
        chief = open(os.path.join(run_dir, "worker0.log"), errors="replace").read()
        other = open(os.path.join(run_dir, "worker1.log"), errors="replace").read()
        check(workers[0].returncode == 0, "the chief exited %d:\n%s" %
              (workers[0].returncode, chief[-3000:]))
        check(workers[1].returncode == 0, "worker 1 exited %d:\n%s" %
              (workers[1].returncode, other[-3000:]))
        check("data format image_folder (detected" in chief,
              "the chief did not log the detected format:\n" + chief[-3000:])
        check("in this worker's shard" in other, "worker 1 did not log its shard:\n" + other)
        accuracy = accuracy_of(chief, "cluster")
        print("cluster    %6.2f%%  (2 PS + 2 workers, 1 epoch, Inception preprocessing)" %
              accuracy, flush=True)
        check(accuracy > 30, "the cluster learned nothing: %.2f%%" % accuracy)
        for ps in processes[:2]:
            ps.wait(timeout=60)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz")):
        print("Fashion-MNIST not found in %s; skipping" % DATA_DIR)
        return SKIP
    run_dir = tempfile.mkdtemp(prefix="image_data_e2e_")
    print("run folder %s" % run_dir, flush=True)
    started = time.time()
    ok = False
    try:
        idx = os.path.join(run_dir, "idx")
        os.makedirs(idx)
        write_subset("train", TRAIN_PER_CLASS, idx)
        write_subset("test", TEST_PER_CLASS, idx)
        ctl = os.path.join(args.bin_dir, "mobilenet-ctl")
        folders = {}
        for target in ("image_folder_png", "image_folder_jpeg", "cifar"):
            folders[target] = os.path.join(run_dir, target)
            run([ctl, "convert-data", "--from_idx=" + idx, "--to=" + target,
                 "--out=" + folders[target]], os.path.join(run_dir, target + ".log"), 120)

        reference = {}
        for seed in SEEDS:
            reference[seed], output = train_single(args.bin_dir, run_dir, "idx", idx, seed,
                                                   SAME_PREPROCESSING)
            check("data format idx (detected" in output, "no detection line:\n" + output[-2000:])
        png, _ = train_single(args.bin_dir, run_dir, "png", folders["image_folder_png"],
                              SEEDS[0], SAME_PREPROCESSING + ["--data_format=image_folder"])
        check(png == reference[SEEDS[0]],
              "png: %.2f%%, the IDX files %.2f%%: the same pixels must train the same model" %
              (png, reference[SEEDS[0]]))
        print("idx    mean %6.2f%%" % mean(reference.values()), flush=True)
        for name, data_dir, extra in [("jpeg", folders["image_folder_jpeg"], []),
                                      ("cifar", folders["cifar"], ["--channels=3"])]:
            accuracies = [train_single(args.bin_dir, run_dir, name, data_dir, seed,
                                       SAME_PREPROCESSING + extra)[0] for seed in SEEDS]
            print("%-6s mean %6.2f%%" % (name, mean(accuracies)), flush=True)
            check(abs(mean(accuracies) - mean(reference.values())) <= TOLERANCE_POINTS,
                  "%s: mean %.2f%% over seeds %s is more than %.1f points from the IDX files' "
                  "%.2f%%" % (name, mean(accuracies), SEEDS, TOLERANCE_POINTS,
                             mean(reference.values())))
        train_cluster(args.bin_dir, run_dir, folders["image_folder_png"])
        ok = True
    except (Failure, subprocess.TimeoutExpired) as e:
        print("FAILED: %s" % e)
    finally:
        if ok and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print("%s in %.0fs" % ("PASSED" if ok else "FAILED", time.time() - started))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
