#!/usr/bin/env python3
"""deploy/run_local.sh's argument handling, through its --dry_run (no build, no processes):
the default preset and --preset=long/none, flags after a preset win, --epochs also moves the
cosine schedule's end unless --lr_cosine_epochs is given, each flag reaches the processes
that use it, and bad arguments are refused naming them."""
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "deploy", "run_local.sh")


def dry_run(*args):
    """(ps flags, worker flags) as lists, with absl's last-one-wins applied."""
    out = subprocess.run(["bash", SCRIPT, "--dry_run", *args], capture_output=True, text=True,
                         check=True, timeout=30).stdout.splitlines()
    ps = out[0].split(": ", 1)[1].split() if ": " in out[0] else []
    workers = out[1].split(": ", 1)[1].split() if ": " in out[1] else []
    return effective(ps), effective(workers)


def effective(flags):
    values = {}
    for flag in flags:
        name, _, value = flag.partition("=")
        values[name] = value
    return values


def refused(*args):
    result = subprocess.run(["bash", SCRIPT, "--dry_run", *args], capture_output=True, text=True,
                            timeout=30)
    return result.returncode, result.stderr


def check(condition, message):
    if not condition:
        print("FAIL: " + message)
        sys.exit(1)


def main():
    ps, workers = dry_run()
    check(ps.get("--optimizer") == "momentum" and ps.get("--lr_decay") == "cosine",
          "default preset: the servers get the optimizer and schedule: %s" % ps)
    check(workers.get("--epochs") == "17" and ps.get("--lr_cosine_epochs") == "17" and
          workers.get("--lr_cosine_epochs") == "17",
          "default preset: the cosine lasts the 17 epochs: %s / %s" % (ps, workers))
    check("--shallow" in ps and "--shallow" in workers and ps.get("--resolution") == "48",
          "default preset: the model flags reach both: %s / %s" % (ps, workers))
    check("--weight_decay" in workers and "--weight_decay" not in ps,
          "weight decay is the workers' (they add it to the gradients)")
    check("--epochs" not in ps, "--epochs is a worker flag")

    ps, workers = dry_run("--sync_replicas", "--replicas_to_aggregate=2",
                          "--worker_liveness_secs=5")
    for flag, value in (("--sync_replicas", ""), ("--replicas_to_aggregate", "2"),
                        ("--worker_liveness_secs", "5")):
        check(ps.get(flag) == value and workers.get(flag) == value,
              "%s reaches servers and workers alike: %s / %s" % (flag, ps, workers))

    ps, workers = dry_run("--epochs=5")
    check(workers["--epochs"] == "5" and ps["--lr_cosine_epochs"] == "5" and
          workers["--lr_cosine_epochs"] == "5", "--epochs=5 moves the cosine's end: %s" % ps)
    ps, workers = dry_run("--epochs", "6")
    check(workers["--epochs"] == "6" and ps["--lr_cosine_epochs"] == "6",
          "--epochs 6 (two words) too: %s / %s" % (ps, workers))
    ps, workers = dry_run("--epochs=5", "--lr_cosine_epochs=9")
    check(ps["--lr_cosine_epochs"] == "9", "an explicit --lr_cosine_epochs wins: %s" % ps)
    ps, workers = dry_run("--learning_rate=0.05", "--resolution=56")
    check(ps["--learning_rate"] == "0.05" and ps["--resolution"] == "56" and
          workers["--resolution"] == "56", "flags after the preset win: %s" % ps)

    ps, workers = dry_run("--preset=long")
    check(ps.get("--resolution") == "56" and "--shallow" not in ps and
          workers.get("--epochs") == ps.get("--lr_cosine_epochs"),
          "--preset=long replaces the default preset: %s / %s" % (ps, workers))
    ps, workers = dry_run("--preset=none")
    check(ps == {} and workers == {}, "--preset=none adds nothing: %s / %s" % (ps, workers))

    code, err = refused("--preset=bogus")
    check(code == 2 and "bogus" in err and "default, long, none" in err,
          "an unknown preset is refused naming it: %d %s" % (code, err))
    code, err = refused("--checkpoint_dir=/tmp/x")
    check(code == 2 and "--checkpoint_dir" in err, "flags the script sets are refused: %s" % err)
    code, err = refused("--num_workers=0")
    check(code == 2 and "[1, 64]" in err, "worker count out of range refused: %s" % err)
    print("run_local.sh argument handling: ok")


if __name__ == "__main__":
    main()
