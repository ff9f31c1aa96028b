#!/usr/bin/python3
"""End-to-end tests of distributed training: real mobilenet-ps and mobilenet-worker
processes on loopback (free ports), 2 PS + 2 workers training a small model on
Fashion-MNIST in the configuration of e2e_common.py, observed through
`mobilenet-ctl status --json`, the processes' logs and exit codes, and the servers' final
checkpoints. The disturbed runs (killed, stopped and cut-off processes) are in
fault_injection_test.py; both compare with the baseline written here.

Scenarios (one per ctest entry, see tests/CMakeLists.txt):
  baseline        the undisturbed run, three times: every process exits 0, every worker
                  trained exactly its share (the servers' final ledgers), no push refused.
                  Writes the mean final accuracy and the median wall time to --baseline
                  FILE (the ctest fixture the other scenarios require).
  train           the same run observed while it trains: status shows every server's
                  ledger and progress, the chief's timed evaluations, mobilenet-ctl
                  evaluates the running servers; at the end the accuracy is within 2
                  points of the baseline's, the ONNX model is written, the chief evaluated
                  the final weights (mobilenet-ctl evaluates the servers' checkpoint folder
                  to the same accuracy) and the final checkpoints hold the end of the
                  training (every worker finished, the chief's last evaluation).
  reject_policy   with --staleness_policy=reject --max_staleness=1 the servers refuse
                  stale pushes (none applied above staleness 1, every refusal missing from
                  the ledger); the workers drop those gradients and finish; the accuracy
                  clears a fixed bar (fewer gradients are applied, so not the baseline's).
  flag_defaults   mobilenet-ps's optimizer, schedule and model flags have the same
                  defaults as mobilenet-worker's.

Usage: cluster_e2e_test.py --bin_dir DIR --scenario NAME [--baseline FILE] [--keep]
Exit 77 (skipped) when the Fashion-MNIST files are not installed.
"""

import json
import os
import re
import subprocess
import sys
import time

from e2e_common import (BATCH, NUM_PS, NUM_WORKERS, TEST_EXAMPLES, Cluster, check,
                        check_accuracy, check_final_step, check_ledger, final_evaluation,
                        ledger_row, merged_row, read_baseline, run_main, server, share_pushes,
                        training_timeout, write_baseline)


# Asynchronous training is not deterministic: the final accuracy of one undisturbed run
# varies with a standard deviation of about 0.55 points (measured over 12 runs). A
# disturbed run compared with a single run would miss the 2-point bar by chance in about
# 1 suite of 15; compared with the mean of three, in about 1 of 100.
BASELINE_RUNS = 3


def scenario_baseline(ctx):
    check(ctx.baseline is not None, "--baseline FILE is required: where to write the result")
    if os.path.exists(ctx.baseline):
        os.remove(ctx.baseline)  # never leave an earlier run's result behind a failure
    accuracies, walls = [], []
    for run in range(BASELINE_RUNS):
        run_dir = os.path.join(ctx.run_dir, "run%d" % run)
        os.makedirs(run_dir)
        cluster = ctx.cluster = Cluster(ctx.bin_dir, run_dir)
        start = time.time()
        cluster.start_all()
        cluster.finish(timeout=600)
        walls.append(time.time() - start)
        evaluation = final_evaluation(cluster.workers[0].log_path)
        accuracies.append(evaluation["accuracy"])
        print("undisturbed run %d of %d: final accuracy %.2f%%, %.0f s" %
              (run + 1, BASELINE_RUNS, evaluation["accuracy"], walls[-1]))
        check_no_refusals(cluster)
        ledger = cluster.final_ledger()
        check_ledger(ledger)
        for task in range(NUM_PS):
            check(server(ledger, task)["global_step"] == NUM_WORKERS * share_pushes(),
                  "ps %d ended at step %d; every push applied would make it %d" %
                  (task, server(ledger, task)["global_step"], NUM_WORKERS * share_pushes()))
        # (Whether the chief's evaluation is of the very last step is the train scenario's
        # check: a failure there must not keep every other scenario from running.)
        ctx.cluster = None
    mean = dict(evaluation, accuracy=sum(accuracies) / len(accuracies), runs=accuracies)
    print("baseline: mean accuracy %.2f%% of %s" %
          (mean["accuracy"], ", ".join("%.2f%%" % a for a in accuracies)))
    write_baseline(ctx.baseline, mean, sorted(walls)[len(walls) // 2])


def check_no_refusals(cluster, kinds=("stale", "restarted", "invalid", "duplicate")):
    for task in range(NUM_PS):
        check(task in cluster.last_answer, "ps %d never answered status" % task)
        refused = cluster.last_answer[task]["pushes_rejected"]
        for kind in kinds:
            check(refused[kind] == 0, "ps %d refused %d pushes as %s in an undisturbed run" %
                  (task, refused[kind], kind))


def ctl_eval(cluster, source_flag):
    out = subprocess.run([cluster.binary("mobilenet-ctl"), "eval", source_flag, "--json",
                          "--threads=1"], capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, "mobilenet-ctl eval %s failed (exit %d): %s" %
          (source_flag, out.returncode, out.stderr))
    result = json.loads(out.stdout)
    print("mobilenet-ctl eval %s: %s" % (source_flag, result))
    check(result["examples"] == TEST_EXAMPLES, "mobilenet-ctl eval %s took %s examples, "
          "expected the whole test set" % (source_flag, result["examples"]))
    return result


def check_status_rows(status, seen):
    """Every answering server lists a ledger row for every member 0..n-1; a worker's
    counts never go back on a server that did not restart. `seen` keeps the last counts."""
    check(status["summary"]["plans_agree"], "servers disagree on the plan: %s" % status)
    for task in range(NUM_PS):
        s = server(status, task)
        if not s["ok"]:
            continue
        ids = sorted(row["worker_id"] for row in s["workers"])
        check(ids == list(range(NUM_WORKERS)), "ps %d lists ledger rows %s, expected one per "
              "member 0..%d" % (task, ids, NUM_WORKERS - 1))
        for row in s["workers"]:
            key = (task, row["worker_id"])
            before = seen.get(key, (0, 0))
            check(row["pushes"] >= before[0] and row["steps"] >= before[1],
                  "ps %d: worker %d's pushes/steps went back from %s to %s" %
                  (task, row["worker_id"], before, (row["pushes"], row["steps"])))
            check(row["pushes"] <= share_pushes(), "ps %d counts %d pushes of worker %d, more "
                  "than its share's %d" % (task, row["pushes"], row["worker_id"],
                                          share_pushes()))
            seen[key] = (row["pushes"], row["steps"])
        step = s["global_step"]
        check(step >= seen.get(("step", task), 0), "ps %d's global step went back" % task)
        seen[("step", task)] = step
    for row in status["workers"]:
        check(row["examples"] == row["pushes"] * BATCH,
              "worker %d: %d examples in %d pushes of %d" % (row["worker_id"], row["examples"],
                                                            row["pushes"], BATCH))


def final_checkpoint_lines(cluster):
    return [line for task in range(NUM_PS) for line in cluster.ps[task].log().splitlines()
            if "training is over" in line or "checkpoint" in line][-2 * NUM_PS:]


def scenario_train(ctx):
    baseline = read_baseline(ctx.baseline)
    # The chief also evaluates every few seconds (on its own thread) so that status shows
    # evaluations while training; the training itself is the baseline's.
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir, worker_extra=["--eval_every_secs=8"])
    cluster.start_all()
    seen = {}
    first = cluster.wait_for(
        "both workers to push to both servers",
        lambda s: s["summary"]["servers_answering"] == NUM_PS and
        all(ledger_row(server(s, t), w)["pushes"] > 20 and
            ledger_row(server(s, t), w)["seconds_since_seen"] >= 0
            for t in range(NUM_PS) for w in range(NUM_WORKERS)), 120)
    check_status_rows(first, seen)
    # The running servers' current model evaluates with mobilenet-ctl --ps_hosts.
    live = ctl_eval(cluster, "--ps_hosts=" + cluster.ps_hosts)
    check(live["global_step"] >= first["summary"]["global_step"],
          "live evaluation at step %d, before the status's %d" %
          (live["global_step"], first["summary"]["global_step"]))
    # Progress: the step and every worker's pushes grow; the chief's evaluations show up.
    evaluations = set()
    while cluster.workers[0].alive():
        cluster.check_alive()
        s = cluster.status()
        if s["summary"]["servers_answering"] < NUM_PS or s["summary"]["finishing"]:
            break  # the training is ending
        check_status_rows(s, seen)
        if s["summary"]["evaluation"] is not None:
            evaluations.add(s["summary"]["evaluation"]["step"])
            for t in range(NUM_PS):
                check(server(s, t)["evaluation"] is not None,
                      "ps %d lacks the chief's evaluation the other has" % t)
        time.sleep(0.3)
    last_step = max(seen.get(("step", t), 0) for t in range(NUM_PS))
    print("status: global step seen up to %d; chief's evaluations at steps %s" %
          (last_step, sorted(evaluations)))
    check(last_step > first["summary"]["global_step"] + 1000,
          "the global step went from %d only to %d while training" %
          (first["summary"]["global_step"], last_step))
    check(len(evaluations) >= 2, "status showed %d distinct evaluations of the chief "
          "(--eval_every_secs=8); expected several" % len(evaluations))
    cluster.finish(timeout=training_timeout(baseline))
    evaluation = final_evaluation(cluster.workers[0].log_path)
    check_accuracy(evaluation, baseline)
    ledger = cluster.final_ledger()
    check_ledger(ledger)
    final_step = ledger["summary"]["global_step"]
    parameter_bytes = ledger["summary"]["parameter_bytes"]
    onnx_size = os.path.getsize(cluster.onnx) if os.path.exists(cluster.onnx) else 0
    check(onnx_size > parameter_bytes, "ONNX model %s has %d bytes; the weights alone are %d" %
          (cluster.onnx, onnx_size, parameter_bytes))
    # The servers' checkpoint folder is the model: mobilenet-ctl evaluates it.
    evaluated = ctl_eval(cluster, "--checkpoint=" + cluster.checkpoint_dir)
    check(evaluated["global_step"] == final_step,
          "the checkpoint folder evaluates at step %d; the servers ended at %d" %
          (evaluated["global_step"], final_step))
    # The chief evaluated those final weights (after every worker's last push), to what
    # mobilenet-ctl measures on them.
    check_final_step(evaluation, ledger)
    check(abs(100 * evaluated["accuracy"] - evaluation["accuracy"]) <= 0.05,
          "mobilenet-ctl evaluates the final checkpoints to %.2f%%, the chief measured "
          "%.2f%% on the same weights" % (100 * evaluated["accuracy"], evaluation["accuracy"]))
    # The final checkpoints hold the end of the training: every worker finished, the
    # chief's final evaluation.
    for worker_id in range(NUM_WORKERS):
        check(merged_row(ledger, worker_id).get("finished"),
              "worker %d is not finished in the ledger the servers' final checkpoints hold: "
              "%s (their logs: %s)" % (worker_id, merged_row(ledger, worker_id),
                                       final_checkpoint_lines(cluster)))
    kept = ledger["summary"]["evaluation"]
    check(kept is not None and kept["step"] == evaluation["global_step"] and
          abs(100 * kept["accuracy"] - evaluation["accuracy"]) < 0.006,
          "the servers' final checkpoints keep the evaluation %s; the chief's final one "
          "was %s (their logs: %s)" % (kept, evaluation, final_checkpoint_lines(cluster)))


# Every gradient of an overlapping worker is at least one step stale and two workers
# interleave, so with --max_staleness=1 about 45% of the pushes are refused and their
# batches never applied: another training than the baseline's, so a fixed bar rather than
# the baseline's accuracy. Measured 84.7-86.7% on a quiet machine (the baseline's runs:
# 85.0-87.0%), but one run of the whole suite, its first minutes sharing the cores, ended at
# 79.7% (train accuracy 84%): which pushes are refused depends on timing, and so does the
# result. 75% stays far above what a run that applied refused or wrong gradients, or too
# few, would reach (chance is 10%).
REJECT_POLICY_MIN_ACCURACY = 75.0


def scenario_reject_policy(ctx):
    baseline = read_baseline(ctx.baseline)
    # Overlapped communication (the workers' default) makes every gradient at least one
    # step stale, so 1 is the tightest useful bound.
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir,
                                    ps_extra=["--staleness_policy=reject", "--max_staleness=1"])
    cluster.start_all()
    s = cluster.wait_for("some pushes refused as too stale on every server",
                         lambda s: s["summary"]["servers_answering"] == NUM_PS and
                         all(server(s, t)["pushes_rejected"]["stale"] > 0
                             for t in range(NUM_PS)), 120)
    print("refused as stale so far: %s" % [server(s, t)["pushes_rejected"]["stale"]
                                           for t in range(NUM_PS)])
    cluster.finish(timeout=training_timeout(baseline))
    for task in range(NUM_PS):
        answer = cluster.last_answer[task]
        check(answer["staleness"]["max"] <= 1,
              "ps %d applied a push of staleness %s with --max_staleness=1" %
              (task, answer["staleness"]["max"]))
    ledger = cluster.final_ledger()
    for task in range(NUM_PS):
        applied = sum(ledger_row(server(ledger, task), w)["pushes"] for w in range(NUM_WORKERS))
        missing = NUM_WORKERS * share_pushes() - applied
        stale = cluster.last_answer[task]["pushes_rejected"]["stale"]
        print("ps %d: %d of the workers' %d pushes applied, %d refused as stale (last status)" %
              (task, applied, NUM_WORKERS * share_pushes(), stale))
        # The last status may predate the last few refusals, never the other way round.
        check(stale <= missing, "ps %d counted %d stale refusals but only %d pushes are "
              "missing from its ledger" % (task, stale, missing))
    evaluation = final_evaluation(cluster.workers[0].log_path)
    print("final accuracy %.2f%% (baseline %.2f%%; bar %.0f%%)" %
          (evaluation["accuracy"], baseline["accuracy"], REJECT_POLICY_MIN_ACCURACY))
    check(evaluation["accuracy"] >= REJECT_POLICY_MIN_ACCURACY,
          "final accuracy %.2f%% below %.0f%%" % (evaluation["accuracy"],
                                                  REJECT_POLICY_MIN_ACCURACY))


def help_defaults(binary):
    out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True, timeout=60)
    defaults = {}
    # One block per flag: "    --name (help, possibly wrapped);\n      default: value;"
    for block in re.split(r"\n\s*(?=--\w)", out.stdout + out.stderr):
        match = re.match(r"--(\w+) \(.*\);\s+default: (.*?);", block, re.S)
        if match:
            defaults[match.group(1)] = match.group(2)
    return defaults


def scenario_flag_defaults(ctx):
    ps = help_defaults(os.path.join(ctx.bin_dir, "mobilenet-ps"))
    worker = help_defaults(os.path.join(ctx.bin_dir, "mobilenet-worker"))
    shared = ["alpha", "resolution", "channels", "shallow", "optimizer", "learning_rate",
              "lr_decay", "lr_cosine_epochs", "lr_warmup_epochs", "lr_decay_factor", "epochs_per_decay", "staircase", "momentum", "rmsprop_decay",
              "rmsprop_epsilon", "bn_moving_average_decay", "weight_ema_decay", "seed", "ps_hosts", "worker_hosts",
              "job_name", "task_index"]
    for flag in shared:
        check(flag in ps and flag in worker, "--%s missing from one binary's --helpfull" % flag)
        check(ps[flag] == worker[flag],
              "--%s: mobilenet-ps default %s, mobilenet-worker default %s; keep them equal" %
              (flag, ps[flag], worker[flag]))
    print("%d shared flags have equal defaults" % len(shared))


SCENARIOS = {"baseline": scenario_baseline, "train": scenario_train,
             "reject_policy": scenario_reject_policy, "flag_defaults": scenario_flag_defaults}

if __name__ == "__main__":
    sys.exit(run_main(__doc__, SCENARIOS, needs_data=lambda name: name != "flag_defaults"))
