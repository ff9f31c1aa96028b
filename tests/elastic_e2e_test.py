#!/usr/bin/python3
"""Elastic workers (--max_workers): real mobilenet-ps and mobilenet-worker processes on
loopback, the model and optimizer of e2e_common.py, ELASTIC_EPOCHS epochs of the data set
leased in blocks by parameter server 0, observed through the servers' GetStatus (Python
stubs generated from the project's .proto: data_leases, membership_events, max_workers)
and `mobilenet-ctl status`, the processes' logs and exit codes.

Scenarios (one per ctest entry, see tests/CMakeLists.txt):
  join_and_leave       2 PS, --worker_hosts of 2, --max_workers=4, asynchronous. Workers 0
                       and 1 start; once some blocks are trained, worker 3 (beyond
                       --worker_hosts) joins and is leased a block; then worker 1 is
                       SIGKILLed while it holds a block and is not restarted. Once
                       --worker_liveness_secs passed, ps 0 records that it left, its
                       blocks are reassigned (blocks_reassigned > 0) and leased to the
                       others; the run ends with every block of every epoch completed,
                       the surviving processes exit 0, `mobilenet-ctl status` named the
                       join and the leave, and the chief's accuracy clears the floor.
  sync_join_leave      The same with --sync_replicas --replicas_to_aggregate=all: the step
                       follows the live workers (the joined one counts, the killed one
                       stops being waited for) and the job finishes.

Usage: elastic_e2e_test.py --bin_dir DIR --scenario NAME [--seed N] [--keep]
Exit 77 (skipped) when the Fashion-MNIST files are not installed.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from e2e_common import (Cluster, check, check_flag_known, answering, final_evaluation,
                        run_main)

ELASTIC_EPOCHS = 3          # of the whole data set, leased in blocks
BLOCK_EXAMPLES = 1024       # --data_block_examples: 59 blocks an epoch of Fashion-MNIST
MAX_WORKERS = 4
LIVENESS_SECS = 4
JOINER = 3                  # a worker id beyond --worker_hosts (0, 1)
# The final accuracy a run must clear after 3 epochs of the data set at alpha 0.25, 28x28.
# Measured with the disturbance: asynchronous 83.1%; synchronous (each step averages the
# 2-3 live workers' gradients, so fewer steps) 78.2% to 81.1% in five runs. The floors
# catch training that does not work (chance is 10%), not the spread: a 4-epoch sync run
# of tests/sync_replicas_e2e_test.py once ended 7 points below its others.
ACCURACY_FLOOR = {False: 72.0, True: 70.0}  # by --sync_replicas
TRAINING_TIMEOUT = 420      # generous: 2 busy cores


class ElasticCluster(Cluster):
    """A Cluster that also reads each server's raw GetStatus over gRPC (`raw[task]`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import ps_client_for_test as client  # needs grpc and protoc: imported only here
        stubs = client.load_stubs(client.default_proto_dir(),
                                  tempfile.mkdtemp(prefix="stubs_", dir=self.run_dir))
        self.pb = stubs.pb
        self.clients = [client.PsClient(stubs, address, deadline_secs=3)
                        for address in self.ps_addresses]
        self.raw = {}

    def status(self):
        status = super().status()
        for task, c in enumerate(self.clients):
            if not answering(status, task):
                continue
            out = c.call("GetStatus", c.pb.StatusRequest())
            if out.response is not None:
                self.raw[task] = out.response
        return status

    def leases(self):
        return self.raw[0].data_leases if 0 in self.raw else None

    def holders(self):
        leases = self.leases()
        return set() if leases is None else {h.worker_id for h in leases.held}

    def events(self, kind, worker):
        if 0 not in self.raw:
            return []
        wanted = self.pb.MembershipEvent.Kind.Value(kind)
        return [e for e in self.raw[0].membership_events
                if e.kind == wanted and e.worker_id == worker]


def describe(leases):
    if leases is None:
        return "ps 0 did not answer"
    return ("%d/%d blocks completed, epoch %d, held %s, %d returned, %d reassigned, %d late" %
            (leases.blocks_completed, leases.blocks_total, leases.epoch,
             sorted((h.worker_id, h.block.epoch, h.block.block) for h in leases.held),
             leases.blocks_returned, leases.blocks_reassigned, leases.late_completions))


def join_and_leave(ctx, sync):
    check_flag_known(ctx.bin_dir, "--max_workers", "elastic workers")
    flags = ["--max_workers=%d" % MAX_WORKERS, "--worker_liveness_secs=%d" % LIVENESS_SECS]
    if sync:
        flags += ["--sync_replicas", "--replicas_to_aggregate=all"]
    cluster = ctx.cluster = ElasticCluster(
        ctx.bin_dir, ctx.run_dir, num_workers=2, die_with_driver=True, ps_extra=flags,
        worker_extra=flags + ["--epochs=%d" % ELASTIC_EPOCHS,
                              "--data_block_examples=%d" % BLOCK_EXAMPLES,
                              "--wait_for_workers_secs=60"])
    print("elastic: %s, %d epochs in blocks of %d examples" %
          (" ".join(flags), ELASTIC_EPOCHS, BLOCK_EXAMPLES))
    cluster.start_all()
    first = ctx.rng.randrange(5, 20)
    s = cluster.wait_for("ps 0 to have %d blocks completed" % first,
                         lambda s: cluster.leases() is not None and
                         cluster.leases().blocks_completed >= first, TRAINING_TIMEOUT)
    check(cluster.raw[0].max_workers == MAX_WORKERS, "ps 0's status says max_workers %d" %
          cluster.raw[0].max_workers)
    total = cluster.leases().blocks_total
    check(total == ELASTIC_EPOCHS * ((60000 + BLOCK_EXAMPLES - 1) // BLOCK_EXAMPLES),
          "ps 0 plans %d blocks" % total)
    cluster.note("before the join: %s" % describe(cluster.leases()))

    cluster.start_worker(JOINER)
    cluster.wait_for("worker %d to join and hold a block" % JOINER,
                     lambda s: JOINER in cluster.holders(), 120)
    cluster.note("worker %d holds a block: %s" % (JOINER, describe(cluster.leases())))
    check(cluster.events("JOINED", JOINER), "ps 0 recorded no JOINED event of worker %d: %s" %
          (JOINER, cluster.raw[0].membership_events))

    leaver = 1
    cluster.wait_for("worker %d to hold a block" % leaver,
                     lambda s: leaver in cluster.holders(), 60, poll=0.05)
    held = [(h.block.epoch, h.block.block) for h in cluster.leases().held
            if h.worker_id == leaver]
    completed_at_kill = cluster.leases().blocks_completed
    cluster.kill(cluster.workers[leaver])
    cluster.note("killed worker %d holding %s" % (leaver, held))
    cluster.wait_for("ps 0 to take worker %d's blocks back" % leaver,
                     lambda s: cluster.leases().blocks_reassigned >= 1 and
                     cluster.events("LEFT", leaver), LIVENESS_SECS + 60)
    cluster.note("after the leave: %s" % describe(cluster.leases()))
    text = subprocess.run([cluster.binary("mobilenet-ctl"), "status", "--ps_hosts=" +
                           cluster.ps_hosts, "--timeout_secs=3"], capture_output=True,
                          text=True, timeout=60).stdout
    for words in ("worker %d joined" % JOINER, "worker %d left" % leaver):
        check(words in text, "mobilenet-ctl status does not say \"%s\":\n%s" % (words, text))

    cluster.workers.pop(leaver)
    cluster.finish(timeout=TRAINING_TIMEOUT)
    final = cluster.raw[0].data_leases
    print("final leases: %s (killed at %d completed)" % (describe(final), completed_at_kill))
    kinds = cluster.pb.MembershipEvent.Kind
    print("ps 0's membership events: %s" % "; ".join(
        "%.1fs worker %d %s%s" % (e.unix_seconds - cluster.begin, e.worker_id, kinds.Name(e.kind),
                                 " (%s)" % e.detail if e.detail else "")
        for e in cluster.raw[0].membership_events))
    check(final.blocks_completed == final.blocks_total,
          "the run ended with %d of %d blocks completed" % (final.blocks_completed,
                                                            final.blocks_total))
    check(not final.held, "blocks still held at the end: %s" % describe(final))
    joiner_log = cluster.workers[JOINER].log()
    check("Joined as elastic worker %d" % JOINER in joiner_log,
          "worker %d's log does not say it joined" % JOINER)
    evaluation = final_evaluation(cluster.workers[0].log_path)
    floor = ACCURACY_FLOOR[sync]
    print("final accuracy %.2f%% (floor %.1f%%); took %.0f s" %
          (evaluation["accuracy"], floor, time.time() - cluster.begin))
    check(evaluation["accuracy"] > floor, "final accuracy %.2f%% is not above %.1f%%" %
          (evaluation["accuracy"], floor))
    check(os.path.exists(cluster.onnx) and os.path.getsize(cluster.onnx) > 0,
          "the chief wrote no ONNX model")


SCENARIOS = {
    "join_and_leave": lambda ctx: join_and_leave(ctx, sync=False),
    "sync_join_leave": lambda ctx: join_and_leave(ctx, sync=True),
}

if __name__ == "__main__":
    sys.exit(run_main(__doc__, SCENARIOS))
