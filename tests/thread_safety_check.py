#!/usr/bin/python3
"""Clang's thread-safety analysis over the project's code: every C++ file of the build
(compile_commands.json) is compiled with clang -fsyntax-only -Wthread-safety, so that a
member marked ABSL_GUARDED_BY(mu) read or written without holding mu, or a function marked
ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) called without it, fails the check. The build itself
uses g++, which ignores the annotations.

First it proves that the check can fail: a small file with a deliberate violation must be
reported. Then it analyses the project and prints every thread-safety diagnostic.

Usage: thread_safety_check.py --build_dir build --source_dir . [--clang clang++-14] [--jobs N]
Exit 0 when clean, 1 on a diagnostic or a file clang cannot compile, 77 (skipped) when no
clang is installed.
"""

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
# Every warning off but the thread-safety ones, which are errors.
ANALYSIS_FLAGS = ["-fsyntax-only", "-Wno-everything", "-Wthread-safety",
                  "-Werror=thread-safety"]

VIOLATION = """
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
class Counter {
 public:
  void Add() { ++count_; }  // no lock held: the analysis must report this
 private:
  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};
int main() { Counter c; c.Add(); }
"""


def find_clang(requested):
    for name in ([requested] if requested else []) + ["clang++-14", "clang++"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def clang_command(entry, clang):
    """The build's compile command of one file, with clang and the analysis flags."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out = [clang]
    skip_next = False
    for arg in args[1:]:
        if skip_next:
            skip_next = False
            continue
        if arg == "-o":
            skip_next = True
            continue
        if arg in ("-c", "-w"):
            continue
        out.append(arg)
    return out + ANALYSIS_FLAGS


def analyse(entry, clang):
    command = clang_command(entry, clang)
    result = subprocess.run(command, cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], result.returncode, result.stderr


def check_that_the_analysis_can_fail(clang, include_flags):
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "violation.cc")
        with open(path, "w") as f:
            f.write(VIOLATION)
        result = subprocess.run([clang, "-std=c++17"] + include_flags + [path] + ANALYSIS_FLAGS,
                                capture_output=True, text=True)
    if result.returncode == 0 or "requires holding mutex" not in result.stderr:
        print("FAILED: clang did not report a deliberate thread-safety violation; the "
              "analysis is not working (exit %d):\n%s" % (result.returncode, result.stderr))
        return False
    print("a deliberate violation is reported: %s" %
          result.stderr.strip().splitlines()[0].split("error: ")[-1])
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build_dir", required=True)
    parser.add_argument("--source_dir", required=True)
    parser.add_argument("--clang", default="")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    clang = find_clang(args.clang)
    if clang is None:
        print("no clang++ installed (Debian package clang); skipping")
        return SKIP
    source_dir = os.path.realpath(args.source_dir)
    build_dir = os.path.realpath(args.build_dir)
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    # The project's own files; generated code (under the build folder) is not ours.
    entries = [e for e in entries
               if os.path.realpath(e["file"]).startswith(source_dir + os.sep)
               and not os.path.realpath(e["file"]).startswith(build_dir + os.sep)]
    if not entries:
        print("FAILED: no project files in %s/compile_commands.json" % build_dir)
        return 1
    includes = [a for a in clang_command(entries[0], clang) if a.startswith("-I")]
    if not check_that_the_analysis_can_fail(clang, includes):
        return 1
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path, code, stderr in pool.map(lambda e: analyse(e, clang), entries):
            if code != 0 or stderr.strip():
                failures.append((os.path.relpath(path, source_dir), code, stderr))
    for path, code, stderr in failures:
        print("---- %s (clang exit %d)\n%s" % (path, code, stderr))
    print("%d files analysed with %s -Wthread-safety: %d with diagnostics" %
          (len(entries), os.path.basename(clang), len(failures)))
    print("PASSED" if not failures else "FAILED")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
