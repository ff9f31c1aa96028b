#!/usr/bin/python3
"""`mobilenet-ctl predict --image` with the real binaries, end to end.

1. A single-process training of a few steps on synthetic data writes a checkpoint without
   class names (random data has none); `mobilenet-ctl convert-data` writes one PNG and
   one JPEG test image per class. predict --image --json classifies them: 5 top entries
   per image, most probable first, probabilities summing to at most 1, by number with
   "class_names_known": false; the text output says the names are unknown; a file that
   is not an image is reported by name (exit 1) and the other files are still classified.
2. A real mobilenet-ps is given class names by the chief (ReportEvaluation over gRPC, as
   tests/hostile_requests_test.py does): predict --ps_hosts names the classes, export
   --ps_hosts writes them into the ONNX metadata_props (checked with the onnx module when
   installed), and after a SIGTERM the server's checkpoint carries them to predict
   --checkpoint.
3. A single-process training of a few steps on the PNG folder records the folder's class
   names in its checkpoint, and predict --checkpoint names them.

Usage: predict_image_e2e_test.py --bin_dir BUILD/bin --proto_dir SOURCE/proto
Exit status: 0 passed, 1 failed, 77 skipped (Fashion-MNIST not installed).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from e2e_common import Failure, check
import ps_client_for_test as pst

SKIP = 77
DATA_DIR = "/usr/share/datasets/fashion-mnist"


def run(command, expect_code=0):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if expect_code is not None and result.returncode != expect_code:
        raise Failure("%s exited %d (expected %d):\n%s%s" % (
            " ".join(command), result.returncode, expect_code, result.stdout, result.stderr))
    return result


def check_predictions(out, files, names):
    """`out`: predict --image --json's output for `files`; `names`: the class names the
    model should carry ([] for none)."""
    parsed = json.loads(out)
    check(parsed["class_names_known"] == bool(names),
          "class_names_known is %r, expected %r" % (parsed["class_names_known"], bool(names)))
    predictions = parsed["predictions"]
    check([p["file"] for p in predictions] == files,
          "predictions for %s, expected %s" % ([p["file"] for p in predictions], files))
    for p in predictions:
        top = p["top"]
        check(len(top) == 5, "%s: %d top entries, expected 5" % (p["file"], len(top)))
        probabilities = [t["probability"] for t in top]
        check(all(0 <= q <= 1 for q in probabilities) and
              probabilities == sorted(probabilities, reverse=True),
              "%s: top probabilities %s are not sorted in [0, 1]" % (p["file"], probabilities))
        check(sum(probabilities) <= 1 + 1e-5, "%s: the top-5 sum to %g > 1" %
              (p["file"], sum(probabilities)))
        check(p["index"] == top[0]["index"] and p["probability"] == top[0]["probability"],
              "%s: the prediction %r is not its top-1 %r" % (p["file"], p, top[0]))
        for t in [p] + top:
            if names:
                check(t.get("class") == names[t["index"]], "%s: class %r for index %d, "
                      "expected %r" % (p["file"], t.get("class"), t["index"], names[t["index"]]))
            else:
                check("class" not in t, "%s: a class name %r without names" %
                      (p["file"], t.get("class")))
    return predictions


def without_names(bin_dir, work):
    """Part 1; returns the image files and the class folder names."""
    ctl = os.path.join(bin_dir, "mobilenet-ctl")
    checkpoints = os.path.join(work, "checkpoints")
    run([os.path.join(bin_dir, "mobilenet-worker"), "--alpha=0.25", "--resolution=28",
         "--channels=1", "--epochs=1", "--batch_size=32", "--eval_every_epochs=0",
         "--synthetic", "--synthetic_classes=10", "--synthetic_examples=320", "--quiet",
         "--checkpoint_dir=" + checkpoints])
    files = []
    for kind, ext in (("png", ".png"), ("jpeg", ".jpg")):
        out = os.path.join(work, kind)
        run([ctl, "convert-data", "--from_idx=" + DATA_DIR, "--to=image_folder_" + kind,
             "--max_per_class=1", "--out=" + out])
        classes = sorted(os.listdir(os.path.join(out, "test")))
        check(len(classes) == 10, "convert-data wrote %d test classes" % len(classes))
        for c in classes[:2]:
            folder = os.path.join(out, "test", c)
            images = sorted(f for f in os.listdir(folder) if f.endswith(ext))
            check(images, "no %s image in %s" % (ext, folder))
            files.append(os.path.join(folder, images[0]))

    predictions = check_predictions(
        run([ctl, "predict", "--checkpoint=" + checkpoints, "--json"] +
            ["--image=" + f for f in files]).stdout, files, [])
    print("predict --image --json without class names: %d images, e.g. %s: class %d (p=%.3f)"
          % (len(predictions), files[0], predictions[0]["index"], predictions[0]["probability"]))

    not_an_image = os.path.join(work, "notes.txt")
    with open(not_an_image, "w") as f:
        f.write("not an image\n")
    text = run([ctl, "predict", "--checkpoint=" + checkpoints, "--image", files[0], "--image",
                not_an_image], expect_code=1)
    check("no class names" in text.stdout, "the text output does not say the names are "
          "unknown:\n%s" % text.stdout)
    check(files[0] + ": class " in text.stdout and "top-5: " in text.stdout,
          "the readable image is not classified by number:\n%s" % text.stdout)
    check(not_an_image + ": error: " in text.stdout and "not a JPEG" in text.stdout and
          "1 of 2 images" in text.stderr, "the file that is not an image is not reported by "
          "name:\n%s%s" % (text.stdout, text.stderr))
    print("the text output says the names are unknown and names the file that is no image")
    return files, classes


def with_names(bin_dir, proto_dir, work, files, names):
    """Part 2."""
    ctl = os.path.join(bin_dir, "mobilenet-ctl")
    stubs = pst.load_stubs(proto_dir, os.path.join(work, "stubs"))
    ps = pst.PsProcess(bin_dir, work, os.path.join(work, "ps-checkpoints"),
                       extra=["--channels=1"])
    client = None
    try:
        ps.start()
        client = pst.PsClient(stubs, ps.address)
        info = pst.ShardInfo(ps.wait_serving(client))
        out = client.call("ReportEvaluation", stubs.pb.EvaluationReport(
            plan_fingerprint=info.fingerprint, worker_id=0, global_step=0, examples=100,
            correct=10, loss=2.3, model=info.model, num_shards=info.num_shards,
            class_names=names))
        check(out.code == client.grpc.StatusCode.OK,
              "ReportEvaluation with class names: %s %s" % (out.code, out.details))
        source = "--ps_hosts=" + ps.ps_hosts
        check_predictions(run([ctl, "predict", source, "--json"] +
                              ["--image=" + f for f in files]).stdout, files, names)
        text = run([ctl, "predict", source, "--image=" + files[0]]).stdout
        first = text.splitlines()[0] if text else ""
        check("no class names" not in text and
              any(first.startswith("%s: %s (p=" % (files[0], n)) for n in names),
              "the text output does not name the class:\n%s" % text)
        print("predict --ps_hosts names the classes: %s" % text.splitlines()[0])

        model = os.path.join(work, "named.onnx")
        exported = run([ctl, "export", source, "--output=" + model]).stdout
        check("class names in metadata_props" in exported,
              "export does not mention the class names: %s" % exported)
        try:
            import onnx
        except ImportError:
            print("no onnx Python module: the ONNX metadata_props are not read back")
        else:
            props = {p.key: p.value for p in onnx.load(model).metadata_props}
            check(props.get("class_names", "").split("\n") == names,
                  "the ONNX metadata_props class_names are %r" % props.get("class_names"))
            print("the ONNX export carries the names in metadata_props")

        client.close()
        client = None
        check(ps.terminate() == 0, "mobilenet-ps did not exit 0 at SIGTERM:\n%s" % ps.tail())
        check_predictions(run([ctl, "predict", "--checkpoint=" + ps.checkpoint_dir, "--json",
                               "--image=" + files[-1]]).stdout, files[-1:], names)
        print("the server's checkpoint carries the names to predict --checkpoint")
    finally:
        if client is not None:
            client.close()
        ps.kill()


def names_from_training(bin_dir, work, files, names):
    """Part 3: the image folder's class names reach the checkpoint."""
    checkpoints = os.path.join(work, "folder-checkpoints")
    run([os.path.join(bin_dir, "mobilenet-worker"), "--alpha=0.25", "--resolution=28",
         "--channels=1", "--epochs=1", "--batch_size=4", "--eval_every_epochs=0", "--quiet",
         "--data_dir=" + os.path.join(work, "png"), "--checkpoint_dir=" + checkpoints])
    check_predictions(run([os.path.join(bin_dir, "mobilenet-ctl"), "predict",
                           "--checkpoint=" + checkpoints, "--json"] +
                          ["--image=" + f for f in files]).stdout, files, names)
    print("training on the PNG folder records its class names: %s" % ", ".join(names[:3]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--proto_dir", default=pst.default_proto_dir())
    args = parser.parse_args()
    # A SIGTERM (ctest's timeout) ends the test through its cleanup: no server left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))
    if not os.path.exists(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")):
        print("SKIPPED: Fashion-MNIST is not installed in %s" % DATA_DIR)
        return SKIP
    work = tempfile.mkdtemp(prefix="predict_image_e2e_")
    start = time.time()
    ok = False
    try:
        files, names = without_names(args.bin_dir, work)
        with_names(args.bin_dir, args.proto_dir, work, files, names)
        names_from_training(args.bin_dir, work, files, names)
        ok = True
    except Failure as e:
        print("FAILED: %s" % e)
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("files kept in %s" % work)
    print("%s in %.0fs" % ("PASSED" if ok else "FAILED", time.time() - start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
