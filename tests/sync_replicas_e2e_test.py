#!/usr/bin/python3
"""Synchronous training with backup workers (--sync_replicas, --replicas_to_aggregate;
Chen et al. 2016): real mobilenet-ps and mobilenet-worker processes on loopback, the model,
optimizer and schedule of e2e_common.py but fewer epochs (SYNC_EPOCHS of each worker's
shard), observed through `mobilenet-ctl status --json` (the servers' sync_* fields), the
processes' logs and exit codes. The sync flags go to the servers and the workers alike.

Scenarios (one per ctest entry, see tests/CMakeLists.txt):
  killed_worker        2 PS + 3 workers, N=2 (one backup): worker 2 is SIGKILLed mid-training
                       and not restarted. PS 0's sync_steps keep advancing after the kill,
                       the surviving processes exit 0, the chief exports the ONNX model
                       and its final accuracy clears ACCURACY_FLOOR.
  stopped_backup       2 PS + 3 workers, N=2: worker 1 is SIGSTOPped for STOP_SECONDS
                       (shorter than --worker_liveness_secs, so it still counts as live):
                       no push of it lands meanwhile, yet PS 0's sync_steps keep advancing
                       (the two others make the quorum); SIGCONT, the job finishes, every
                       process exits 0, the accuracy clears the floor. With one backup a
                       gradient per step arrives late: sync_pushes_dropped > 0.
  waits_without_quorum 2 PS + 2 workers, N=2 (no backup), --worker_liveness_secs=3: worker
                       1 is SIGSTOPped. PS 0's sync_steps stop advancing; once the
                       liveness window passed, live_workers is 1, sync_waiting says why and
                       names worker 1, and the log of PS 0 says it waits; SIGCONT: the
                       steps resume, live_workers is 2 again, the job finishes.
  exact_aggregation    2 PS + 3 workers, N=2, undisturbed; the servers stay up after the
                       training (--exit_after_training=false) to be asked once more: every
                       shard applied the same sync_steps, global_step and examples_seen
                       and averaged the same gradients (N per step but the last few);
                       the servers counted every gradient the workers computed (the
                       averaged ones and the dropped ones the decisions named), in full
                       batches; the chief evaluated the final step.

Usage: sync_replicas_e2e_test.py --bin_dir DIR --scenario NAME [--seed N] [--keep]
Exit 77 (skipped) when the Fashion-MNIST files are not installed.
"""

import json
import os
import signal
import sys
import tempfile
import time

from e2e_common import (BATCH, NUM_PS, Cluster, check, check_flag_known, answering,
                        final_evaluation, ledger_row, run_main, server)

SYNC_EPOCHS = 4             # of each worker's shard
# The final accuracy a sync run must clear. Measured: N=2 of 3 workers, 4 epochs, three
# undisturbed runs 78.7%, 80.6%, 82.3% (a third of the gradients dropped as backups');
# killed_worker (worker 2 gone after 100-250 steps) 73.5% once, 79.5% to 81.3% in four
# other runs. The floor catches training that does not work (chance is 10%), not the spread.
ACCURACY_FLOOR = 70.0
STOP_SECONDS = 10           # SIGSTOP of a worker
SETTLE_SECONDS = 2          # a stopped worker's RPC in flight may still land this long after
TRAINING_TIMEOUT = 300      # generous: 2 busy cores; a run takes 20-60 s when quiet

# The status fields of synchronous training (proto mobilenet.ps.v1.StatusResponse).
SYNC_STEPS = "sync_steps"
NEEDED = "sync_gradients_needed"
PENDING = "sync_gradients_pending"
DROPPED = "sync_pushes_dropped"
WAITING = "sync_waiting"
LIVE = "live_workers"
SYNC_FIELDS = ("sync_replicas", "replicas_to_aggregate", SYNC_STEPS, NEEDED, PENDING, DROPPED,
               "sync_steps_incomplete", WAITING, LIVE)


class SyncCluster(Cluster):
    """A Cluster whose status() also carries each answering server's sync fields, read
    over gRPC (GetStatus, Python stubs generated from the project's .proto): `mobilenet-ctl
    status --json` does not print them (yet)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import ps_client_for_test as client  # needs grpc and protoc: imported only here
        stubs = client.load_stubs(client.default_proto_dir(),
                                  tempfile.mkdtemp(prefix="stubs_", dir=self.run_dir))
        self.clients = [client.PsClient(stubs, address, deadline_secs=3)
                        for address in self.ps_addresses]

    def status(self):
        status = super().status()
        for task, c in enumerate(self.clients):
            if not answering(status, task):
                continue
            out = c.call("GetStatus", c.pb.StatusRequest())
            if out.response is None:
                continue  # gone since: the next status says so
            for field in SYNC_FIELDS:
                if out.response.DESCRIPTOR.fields_by_name.get(field) is not None:
                    server(status, task)[field] = getattr(out.response, field)
        return status


def sync_flags(replicas, liveness_secs):
    """The flags of synchronous training; the servers and the workers take the same."""
    return ["--sync_replicas", "--replicas_to_aggregate=%s" % replicas,
            "--worker_liveness_secs=%g" % liveness_secs]


def sync_cluster(ctx, num_workers, replicas, liveness_secs=30, ps_extra=()):
    """A started cluster of NUM_PS servers and `num_workers` workers training
    synchronously, SYNC_EPOCHS of each worker's shard."""
    check_flag_known(ctx.bin_dir, "--sync_replicas", "synchronous training")
    flags = sync_flags(replicas, liveness_secs)
    cluster = ctx.cluster = SyncCluster(
        ctx.bin_dir, ctx.run_dir, num_workers=num_workers, die_with_driver=True,
        ps_extra=flags + list(ps_extra),
        worker_extra=flags + ["--epochs=%g" % SYNC_EPOCHS])
    print("sync: %d workers, --replicas_to_aggregate=%s, --worker_liveness_secs=%g, %g epochs "
          "of each worker's shard" % (num_workers, replicas, liveness_secs, SYNC_EPOCHS))
    cluster.start_all()
    return cluster


def sync_field(status, task, field):
    """Server `task`'s `field`, None when it did not answer. A missing field fails (the
    status must carry the sync fields in sync mode)."""
    if not answering(status, task):
        return None
    s = server(status, task)
    check(field in s, "ps %d's status has no %s field: %s" %
          (task, field, json.dumps({k: v for k, v in s.items() if k != "slices"})[:2000]))
    return s[field]


def steps(status, task=0):
    value = sync_field(status, task, SYNC_STEPS)
    return None if value is None else int(value)


def wait_steps(cluster, beyond, timeout=TRAINING_TIMEOUT, task=0):
    """PS `task`'s sync_steps pass `beyond`; returns that status."""
    return cluster.wait_for("ps %d's sync_steps to pass %d" % (task, beyond),
                            lambda s: (steps(s, task) or 0) > beyond, timeout)


def during(taken, key, begin, end=float("inf")):
    """key(status) of the statuses taken between `begin` and `end` seconds, in order (None
    left out)."""
    return [v for v in (key(s) for t, s in taken if begin <= t <= end) if v is not None]


def brief(status, task=0):
    """The sync fields of server `task`'s answer in `status`, for messages."""
    if not answering(status, task):
        return "ps %d did not answer" % task
    return describe(server(status, task))


def describe(s):
    """The progress and sync fields of one server's answer."""
    return json.dumps({k: s.get(k) for k in ("global_step", "examples_seen", SYNC_STEPS, NEEDED,
                                              PENDING, DROPPED, WAITING, LIVE)})


def finish_and_check(cluster, gone=()):
    """Training completes: the workers the driver did not remove (`gone`: killed, not
    restarted) and then the servers exit 0; the chief exported the model and its final
    accuracy clears ACCURACY_FLOOR. Returns the chief's final evaluation."""
    for task in gone:
        cluster.workers.pop(task)
    cluster.finish(timeout=TRAINING_TIMEOUT)
    evaluation = final_evaluation(cluster.workers[0].log_path)
    check(os.path.exists(cluster.onnx) and os.path.getsize(cluster.onnx) > 0,
          "the chief wrote no ONNX model at %s" % cluster.onnx)
    print("final accuracy %.2f%% at global step %d (floor %.1f%%); took %.0f s" %
          (evaluation["accuracy"], evaluation["global_step"], ACCURACY_FLOOR,
           time.time() - cluster.begin))
    check(evaluation["accuracy"] > ACCURACY_FLOOR,
          "final accuracy %.2f%% is not above the floor %.1f%%" %
          (evaluation["accuracy"], ACCURACY_FLOOR))
    for task in range(NUM_PS):
        last = cluster.last_answer.get(task)
        if last is not None:
            print("ps %d's last status: %s" % (task, describe(last)))
    return evaluation


# ---------------------------------------------------------------------------------------

def scenario_killed_worker(ctx):
    cluster = sync_cluster(ctx, num_workers=3, replicas=2, liveness_secs=5)
    at = ctx.rng.randrange(100, 250)
    print("plan: SIGKILL worker 2 once ps 0 applied %d sync steps; it stays dead" % at)
    s = wait_steps(cluster, at)
    check(cluster.workers[2].alive(), "worker 2 ended before its kill point")
    cluster.kill(cluster.workers[2])
    before = steps(cluster.status())
    cluster.note("worker 2 killed; ps 0 at %s" % brief(s))
    after = wait_steps(cluster, before + 100, timeout=120)
    cluster.note("sync steps go on without worker 2: %s" % brief(after))
    check(int(sync_field(after, 0, NEEDED)) == 2,
          "ps 0 needs %s gradients per step after the kill; --replicas_to_aggregate=2" %
          sync_field(after, 0, NEEDED))
    finish_and_check(cluster, gone=[2])


def scenario_stopped_backup(ctx):
    cluster = sync_cluster(ctx, num_workers=3, replicas=2, liveness_secs=30)
    at = ctx.rng.randrange(100, 250)
    print("plan: SIGSTOP worker 1 for %d s once ps 0 applied %d sync steps" %
          (STOP_SECONDS, at))
    wait_steps(cluster, at)
    stopped = cluster.workers[1]
    cluster.signal(stopped, signal.SIGSTOP)
    try:
        taken = cluster.idle(STOP_SECONDS)
    finally:
        cluster.signal(stopped, signal.SIGCONT)
    stopped.signalled = None  # it runs on and must exit 0 like the others
    sync_steps = during(taken, lambda s: steps(s), SETTLE_SECONDS)
    pushes_1 = during(taken, lambda s: ledger_row(server(s, 0), 1)["pushes"]
                      if answering(s, 0) else None, SETTLE_SECONDS)
    print("while worker 1 was stopped (after %d s): ps 0's sync_steps %s .. %s, worker 1's "
          "pushes %s" % (SETTLE_SECONDS, sync_steps[:1], sync_steps[-1:], sorted(set(pushes_1))))
    check(len(set(pushes_1)) == 1, "pushes of the stopped worker 1 landed: %s" %
          sorted(set(pushes_1)))
    check(sync_steps and sync_steps[-1] >= sync_steps[0] + 20,
          "ps 0's sync_steps went from %s to %s in %d s while worker 1 (a backup) was "
          "stopped: the two others make the quorum of 2 and must go on; last status %s" %
          (sync_steps[:1], sync_steps[-1:], STOP_SECONDS - SETTLE_SECONDS,
           brief(taken[-1][1])))
    live = during(taken, lambda s: sync_field(s, 0, LIVE), SETTLE_SECONDS)
    check(set(live) == {3}, "ps 0 counted %s live workers while worker 1 was stopped for "
          "less than --worker_liveness_secs=30; expected 3" % sorted(set(live)))
    finish_and_check(cluster)
    dropped = [int(cluster.last_answer[t][DROPPED]) for t in range(NUM_PS)]
    print("sync_pushes_dropped per server: %s" % dropped)
    check(dropped[0] > 0, "ps 0 dropped no gradient, but with 3 workers and 2 gradients "
          "per step one per step comes from a closed step")


def scenario_waits_without_quorum(ctx):
    liveness = 3
    cluster = sync_cluster(ctx, num_workers=2, replicas=2, liveness_secs=liveness)
    at = ctx.rng.randrange(100, 250)
    stop_seconds = liveness + STOP_SECONDS
    print("plan: SIGSTOP worker 1 for %d s once ps 0 applied %d sync steps" %
          (stop_seconds, at))
    wait_steps(cluster, at)
    stopped = cluster.workers[1]
    ps0_log_before = len(cluster.ps[0].log())
    cluster.signal(stopped, signal.SIGSTOP)
    try:
        taken = cluster.idle(stop_seconds)
    finally:
        cluster.signal(stopped, signal.SIGCONT)
    stopped.signalled = None
    frozen = sorted(set(during(taken, lambda s: steps(s), SETTLE_SECONDS)))
    print("ps 0's sync_steps while worker 1 was stopped (after %d s): %s" %
          (SETTLE_SECONDS, frozen))
    check(len(frozen) == 1, "ps 0's sync_steps moved (%s) while one of the 2 workers of "
          "the quorum of 2 was stopped" % frozen)
    # sync_waiting speaks once fewer workers are live than the step needs: after the
    # liveness window (the stopped worker is still counted live within it).
    late = during(taken, lambda s: sync_field(s, 0, WAITING), liveness + 2 * SETTLE_SECONDS)
    print("ps 0's sync_waiting after the liveness window: %r" % (late[-1] if late else None))
    check(late and all("worker 1" in w for w in late),
          "after --worker_liveness_secs=%d ps 0's sync_waiting does not say it waits for "
          "worker 1: %s" % (liveness, sorted(set(late))))
    live = during(taken, lambda s: sync_field(s, 0, LIVE), liveness + 2 * SETTLE_SECONDS)
    check(set(live) == {1}, "ps 0 counted %s live workers with worker 1 stopped for more "
          "than --worker_liveness_secs=%d; expected 1" % (sorted(set(live)), liveness))
    # "step 132 waits: 1 of 2 gradients, ..." (not "wait" alone: the run folder's name,
    # in every checkpoint line, holds it).
    said = [l for l in cluster.ps[0].log()[ps0_log_before:].splitlines() if " waits: " in l]
    check(said, "ps 0's log said nothing of waiting while worker 1 was stopped (log %s)" %
          cluster.ps[0].log_path)
    print("ps 0's log while waiting: %s" % said[0][:300])
    resumed = wait_steps(cluster, frozen[0] + 50, timeout=120)
    cluster.note("steps resume after SIGCONT: %s" % brief(resumed))
    back = cluster.wait_for("ps 0 to count 2 live workers again",
                            lambda s: sync_field(s, 0, LIVE) == 2, 60)
    cluster.note("worker 1 is live again: %s" % brief(back))
    finish_and_check(cluster)


def scenario_exact_aggregation(ctx):
    replicas = 2
    cluster = sync_cluster(ctx, num_workers=3, replicas=replicas,
                           ps_extra=["--exit_after_training=false"])
    deadline = time.time() + TRAINING_TIMEOUT
    while any(p.alive() for p in cluster.workers.values()):
        check(time.time() < deadline, "the workers still run after %d s" % TRAINING_TIMEOUT)
        cluster.check_alive()
        cluster.status()
        time.sleep(0.5)
    for task, process in sorted(cluster.workers.items()):
        cluster.wait_exit(process, 1, "worker %d" % task)
    final = cluster.status()
    for task, process in sorted(cluster.ps.items()):
        cluster.signal(process, signal.SIGTERM)
        cluster.wait_exit(process, 60, "ps %d after SIGTERM" % task)
    evaluation = final_evaluation(cluster.workers[0].log_path)
    print("final accuracy %.2f%%" % evaluation["accuracy"])
    check(evaluation["accuracy"] > ACCURACY_FLOOR, "final accuracy %.2f%% is not above the "
          "floor %.1f%%" % (evaluation["accuracy"], ACCURACY_FLOOR))
    check(all(answering(final, t) for t in range(NUM_PS)), "not every server answered after "
          "the training: %s" % [brief(final, t) for t in range(NUM_PS)])
    for task in range(NUM_PS):
        print("ps %d: %s" % (task, brief(final, task)))
    shards = [server(final, t) for t in range(NUM_PS)]
    for key in (SYNC_STEPS, "global_step", "examples_seen"):
        values = [int(s[key]) for s in shards]
        check(len(set(values)) == 1, "the shards disagree on %s: %s" % (key, values))
    sync_steps = int(shards[0][SYNC_STEPS])
    check(sync_steps > 0, "no sync step applied")
    global_step = int(shards[0]["global_step"])
    # A shard counts every gradient of a step: the N it averaged and the late ones the
    # step's decision names as dropped (counted, never applied), all full batches.
    check(int(shards[0]["examples_seen"]) == global_step * BATCH,
          "examples_seen %s is not global_step %d x %d examples" %
          (shards[0]["examples_seen"], global_step, BATCH))
    applied = [int(s["pushes_applied"]) for s in shards]
    check(len(set(applied)) == 1, "the shards averaged different numbers of gradients: %s" %
          applied)
    # N per step, fewer only in the last steps: a backup whose gradient was dropped does
    # not wait, so the workers' data drift apart by a few batches, and whoever is behind
    # at the end steps alone once the others' shares are done (1% of the steps in a
    # sample run: 13 of 1278). At most 5% here.
    check(sync_steps <= applied[0] <= sync_steps * replicas and
          sync_steps * replicas - applied[0] <= sync_steps // 20,
          "%d gradients averaged in %d sync steps of %d" % (applied[0], sync_steps, replicas))
    dropped = int(shards[0][DROPPED])
    named = global_step - applied[0]
    check(0 <= named <= dropped, "%d gradients counted without being averaged, but ps 0 "
          "dropped %d" % (named, dropped))
    check(evaluation["global_step"] == global_step,
          "the chief evaluated global step %d; the servers ended at %d" %
          (evaluation["global_step"], global_step))
    # The workers' records hold every counted gradient, and the workers computed them all
    # (a few dropped at the very end may stay unnamed).
    counted = sum(ledger_row(shards[0], w)["pushes"] for w in range(3))
    check(counted == global_step, "the ledger of ps 0 holds %d pushes; the shard counted %d" %
          (counted, global_step))
    computed = 3 * -(-SYNC_EPOCHS * (60000 // 3) // BATCH)  # each worker: its share's batches
    check(computed - 64 <= global_step <= computed, "the servers counted %d gradients; the "
          "workers computed %d" % (global_step, computed))
    print("%d sync steps averaging %d gradients on every shard, %d dropped (%d named), %d "
          "counted of %d computed" % (sync_steps, applied[0], dropped, named, global_step,
                                      computed))


SCENARIOS = {"killed_worker": scenario_killed_worker,
             "stopped_backup": scenario_stopped_backup,
             "waits_without_quorum": scenario_waits_without_quorum,
             "exact_aggregation": scenario_exact_aggregation}

if __name__ == "__main__":
    sys.exit(run_main(__doc__, SCENARIOS))
