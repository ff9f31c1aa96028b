#!/usr/bin/env python3
"""The training report of a run folder, rendered by headless Chromium.

Writes report.html of --run_dir (a copy of it in a temporary folder) with mobilenet-ctl report,
renders it to a PNG and checks that the picture is not blank, and dumps the DOM and checks that
it holds every chart and every series the logs give. Exit 0 on success, 1 on a failed check,
77 (skipped) when Chromium is missing and cannot be installed.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

# Chart ids and the series ids (chart id, "-", series name) the fixture run must show.
EXPECTED_SERIES = [
    "accuracy-time-test-accuracy", "accuracy-step-test-accuracy", "loss-time-test-loss",
    "loss-step-test-loss", "loss-step-worker-0-training-loss", "loss-step-worker-1-training-loss",
    "images-per-second-worker-0", "images-per-second-worker-1", "staleness-p50",
    "staleness-p90", "staleness-max", "step-time-step-time", "step-time-push-latency",
]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("chromium missing; apt-get install chromium", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
        return shutil.which("chromium")
    return None


def chromium_args(chromium, profile):
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions"]


def decode_png(data):
    """Returns (width, height, rows of RGB tuples' bytes) of an 8-bit RGB or RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width, height, color = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            if depth != 8 or color not in (2, 6):
                raise ValueError("PNG depth %d color type %d not handled" % (depth, color))
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def count_colors(png_path):
    """(pixels, non-white pixels, coloured pixels: not grey) of the PNG."""
    with open(png_path, "rb") as f:
        width, height, channels, rows = decode_png(f.read())
    non_white = coloured = 0
    for row in rows:
        for x in range(0, width * channels, channels):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if r < 240 or g < 240 or b < 240:
                non_white += 1
            if max(r, g, b) - min(r, g, b) > 60:
                coloured += 1
    return width * height, non_white, coloured


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin_dir", required=True, help="where mobilenet-ctl is")
    parser.add_argument("--run_dir", required=True, help="a run folder of logs (copied)")
    parser.add_argument("--evaluations", type=int, required=True,
                        help="test accuracy points the chief's log gives (with the final one)")
    parser.add_argument("--images_per_second_from", choices=["ps", "workers"], required=True,
                        help="where the run's images/s come from: ps-0's status lines (logs "
                             "before progress lines had \"elapsed\") or the workers' own")
    parser.add_argument("--staleness_distribution", action="store_true",
                        help="the ps-N.log files end with their \"staleness of the N pushes "
                             "applied\" line (servers since it was added): the distribution "
                             "chart has a series per server; otherwise it says \"no data\"")
    args = parser.parse_args()

    chromium = find_chromium()
    if chromium is None:
        print("SKIP: chromium is not installed and cannot be installed")
        return 77
    failures = []

    def check(ok, what):
        print("%s: %s" % ("ok" if ok else "FAILED", what), flush=True)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="report_render_") as tmp:
        run_dir = os.path.join(tmp, "run")
        shutil.copytree(args.run_dir, run_dir)
        ctl = os.path.join(args.bin_dir, "mobilenet-ctl")
        made = subprocess.run([ctl, "report", "--run_dir=" + run_dir], capture_output=True,
                              text=True, timeout=60)
        report = os.path.join(run_dir, "report.html")
        check(made.returncode == 0 and os.path.isfile(report),
              "mobilenet-ctl report wrote %s (exit %d, %s%s)" %
              (report, made.returncode, made.stdout.strip(), made.stderr.strip()))
        if failures:
            return 1
        with open(report, encoding="utf-8") as f:
            html = f.read()
        check("<script" not in html and not re.search(r"(src|href)\s*=", html),
              "the page has no script and fetches nothing")

        missing_run = subprocess.run([ctl, "report", "--run_dir=" + os.path.join(tmp, "none")],
                                     capture_output=True, text=True, timeout=60)
        check(missing_run.returncode == 1 and "none" in missing_run.stderr,
              "a missing run folder fails naming it: %s" % missing_run.stderr.strip())

        url = "file://" + report
        profile = os.path.join(tmp, "profile")
        png = os.path.join(tmp, "report.png")
        shot = subprocess.run(chromium_args(chromium, profile) +
                              ["--screenshot=" + png, "--window-size=1200,2000", url],
                              capture_output=True, text=True, timeout=120)
        check(shot.returncode == 0 and os.path.isfile(png),
              "chromium took a screenshot (exit %d)" % shot.returncode)
        if os.path.isfile(png):
            pixels, non_white, coloured = count_colors(png)
            print("screenshot: %d pixels, %d not white, %d coloured" %
                  (pixels, non_white, coloured))
            check(non_white > pixels // 100, "the screenshot is not blank (%.1f%% not white)" %
                  (100.0 * non_white / pixels))
            check(coloured > 1000, "the screenshot shows coloured series (%d pixels)" % coloured)

        dom = subprocess.run(chromium_args(chromium, profile) + ["--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
        check(dom.returncode == 0 and "</html>" in dom.stdout,
              "chromium dumped the DOM (exit %d, %d characters)" %
              (dom.returncode, len(dom.stdout)))
        for series in EXPECTED_SERIES:
            m = re.search(r'<g id="%s" class="series"[^>]*>\s*(<path d="M[^"]+|<rect )' %
                          re.escape(series), dom.stdout)
            check(m is not None, "the DOM holds series %s with its drawing" % series)
        points = re.search(r'id="accuracy-step-test-accuracy"[^>]*data-points="(\d+)"', dom.stdout)
        check(points is not None and int(points.group(1)) == args.evaluations,
              "test accuracy has %d points, the evaluations and the final one (%s)" %
              (args.evaluations, points.group(1) if points else "none"))
        x_label = {"ps": "seconds since ps-0 started",
                   "workers": "seconds since the worker started training"}
        chart = re.search(r'<svg [^>]*id="images-per-second".*?</svg>', dom.stdout, re.S)
        check(chart is not None and x_label[args.images_per_second_from] in chart.group(0),
              "images/s are charted from the %s' logs" % args.images_per_second_from)
        final = re.search(r"Test accuracy: ([0-9.]+% \(\d+/\d+\))",
                          open(os.path.join(run_dir, "worker-0.log")).read())
        check(final is not None and final.group(1) in dom.stdout,
              "the summary gives the final accuracy (%s)" % (final.group(1) if final else None))
        distribution = re.search(r'<svg [^>]*id="staleness-distribution".*?</svg>', dom.stdout,
                                 re.S)
        check(distribution is not None, "the DOM holds the staleness distribution chart")
        distribution = distribution.group(0) if distribution else ""
        if args.staleness_distribution:
            for ps in ("ps-0", "ps-1"):
                check(re.search(r'<g id="staleness-distribution-%s" class="series"[^>]*>\s*<rect '
                                % ps, distribution) is not None,
                      "the staleness distribution has bars of %s" % ps)
        else:
            check("no data" in distribution,
                  "without the servers' distribution lines the chart says \"no data\"")
        check("no data" not in dom.stdout.replace(distribution, ""),
              "no other chart of the fixture run is empty")

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
