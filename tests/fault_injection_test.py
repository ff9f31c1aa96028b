#!/usr/bin/python3
"""Fault injection: the cluster of cluster_e2e_test.py (2 PS + 2 workers, the training
configuration of e2e_common.py) while a driver kills, stops and cuts off its processes at
seeded random points of the training. Every scenario asserts that the training
completes, that every process exits 0 except those the driver killed, that nothing hangs
(every wait has a timeout that says what it waited for), that every worker trained its
share (the servers' final ledgers, read back from their final checkpoints) and that the
chief's final accuracy is within 2 points of the undisturbed baseline's
(cluster_e2e_test.py --scenario baseline), plus:

  kill_workers      SIGKILL each worker at a random point, restart it after a random
                    delay: it says how much an earlier run pushed, none of its pushes is
                    taken for a duplicate, and per server it lost at most the one push in
                    flight when it died (merged over the servers: exactly its share).
  kill_ps           SIGKILL a random PS some time after a periodic checkpoint, restart it:
                    it restores that checkpoint (or a newer one), the workers wait for it
                    ("waiting:" lines) instead of failing, pushes computed from its dead
                    run are refused (pushes_rejected.restarted > 0) and training goes on.
  term_ps           SIGTERM a random PS: it exits 0 with a final checkpoint; restarted, it
                    resumes from exactly that step, and every push missing from its ledger
                    is one it refused as computed before the restart (none lost silently).
  term_worker       SIGTERM worker 1: it finishes its step, exits 0 within seconds saying
                    it stopped on request, its pushes in flight applied on every server
                    and not finished; restarted, it resumes exactly where they end and
                    finishes its share; the chief waits for it and evaluates the final
                    weights.
  stop_ps           SIGSTOP a random PS for 20 s, then SIGCONT: the workers block (no push
                    lands anywhere meanwhile) and retry (deadline errors), nobody exits,
                    training resumes and completes with nothing lost.
  partition_worker  worker 1 runs in a network namespace joined to this one by a veth pair
                    (the servers listen on the host end's address); its link is cut for
                    20 s (the host end down: packets vanish, as on a pulled cable), then
                    restored: worker 1 pushes nothing meanwhile and says it is waiting, the
                    chief trains on, worker 1 continues after the cut and finishes.
                    Needs root and iproute2 (skipped, exit 77, otherwise).

Usage: fault_injection_test.py --bin_dir DIR --scenario NAME --baseline FILE [--seed N]
       [--keep]
The seed (printed; a new one by default) picks the victims, points and delays.
Exit 77 (skipped) when Fashion-MNIST is not installed, or for partition_worker without
root or iproute2.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from e2e_common import (BATCH, NUM_PS, NUM_WORKERS, SKIP, Cluster, Failure, check,
                        check_accuracy, check_final_step, check_ledger, earlier_run,
                        final_evaluation, ledger_row, pushes, read_baseline, run_main, server,
                        server_examples, share_examples, share_pushes, training_timeout)

STOP_SECONDS = 20       # SIGSTOP of a PS, cut of a worker's link
# A blocked worker's last push may still land this long after the fault began; from then
# until the fault ends nothing of it may.
SETTLE_SECONDS = 3

WAITING = "waiting: parameter server %d ("
STOPPED = re.compile(r"Worker (\d+) stopped on request \(SIGTERM/SIGINT\) after (\d+) steps "
                     r"this run; it did not finish its share, and a restart with the same "
                     r"flags resumes it")
FINAL_CHECKPOINT = re.compile(r"(?:final checkpoint|no change since checkpoint) (\S+) "
                              r"\(step (\d+)\)")
PERIODIC_CHECKPOINT = re.compile(r"\] checkpoint (\S+) \(step (\d+)\)")
RESTORED = re.compile(r"restored (\S+): step (\d+)")
CHIEF_WAITED = "waiting for worker(s) 1 to finish before ending the training"


def point(rng, low, high):
    """A random point of a worker's share, as a count of its pushes."""
    return int(rng.uniform(low, high) * share_pushes())


def wait_pushes(cluster, worker_id, target, timeout):
    return cluster.wait_for("worker %d to reach %d pushes" % (worker_id, target),
                            lambda s: pushes(s, worker_id) >= target, timeout)


# The chief must wait when worker 1 still had this many pushes to make as the chief pushed
# its last: about 5 s of worker 1's steps, more than the chief's end-of-share evaluation.
# Closer than that, worker 1 may finish first and there is nothing to wait for.
MUST_WAIT_PUSHES = 200


def follow_to_chief_end(cluster, timeout):
    """Follows status until the chief has pushed its whole share (or no server answers);
    returns how many pushes worker 1 still had to make at the last answer (None if none)."""
    behind = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = cluster.status()
        if s["summary"]["servers_answering"] == 0:
            break
        behind = share_pushes() - pushes(s, 1)
        if pushes(s, 0) >= share_pushes():
            break
        time.sleep(0.2)
    return behind


def check_chief_waited(cluster, behind):
    """The chief waited for worker 1 when worker 1 was clearly behind as the chief ended
    its share (`behind` from follow_to_chief_end)."""
    waited = CHIEF_WAITED in cluster.workers[0].log()
    print("worker 1 had %s pushes left when the chief pushed its last; the chief %s" %
          (behind, "waited for it" if waited else "did not wait"))
    if behind is not None and behind >= MUST_WAIT_PUSHES:
        check(waited, "the chief did not wait for worker 1, which had %d pushes left when "
              "the chief ended its share (no '%s'):\n%s" %
              (behind, CHIEF_WAITED, cluster.workers[0].log()[-2000:]))


def wait_answering(cluster, task, timeout=60):
    return cluster.wait_for("ps %d to answer again" % task,
                            lambda s: server(s, task)["ok"], timeout)


def wait_steps(cluster, task, beyond, timeout):
    """Training goes on on ps `task`: its global step passes `beyond`."""
    return cluster.wait_for("ps %d's global step to pass %d" % (task, beyond),
                            lambda s: server(s, task)["ok"] and
                            server(s, task)["global_step"] > beyond, timeout)


def check_waited(cluster, task, error=""):
    """Every worker logged that it was waiting for ps `task` (and none exited: finish()
    checks their exit codes), with `error` in one of those lines."""
    for worker_id, process in sorted(cluster.workers.items()):
        lines = [l for l in process.log().splitlines() if WAITING % task in l]
        check(lines, "worker %d never logged '%s...' while ps %d was away (log %s)" %
              (worker_id, WAITING % task, task, process.log_path))
        check(any(error in l for l in lines), "worker %d's 'waiting:' lines for ps %d do not "
              "say %s: %s" % (worker_id, task, error, lines))
        print("worker %d: %d 'waiting:' line(s) for ps %d, first: %s" %
              (worker_id, len(lines), task, lines[0][:200]))


def last_match(pattern, text, what):
    matches = pattern.findall(text)
    check(matches, "no %s in the log:\n%s" % (what, text[-2000:]))
    return matches[-1][0], int(matches[-1][1])


def finish_and_compare(cluster, baseline, extra_seconds=0):
    """Training completes (every process exits 0 but those killed), within the hang
    bound; the final accuracy is within the tolerance of the baseline's. Returns (chief's
    final evaluation, final ledger)."""
    cluster.finish(timeout=training_timeout(baseline, extra_seconds))
    evaluation = final_evaluation(cluster.workers[0].log_path)
    check_accuracy(evaluation, baseline)
    return evaluation, cluster.final_ledger()


def frozen(taken, key, begin, end):
    """The distinct values key(status) took in the statuses of `taken` between `begin`
    and `end` seconds (key returns None to leave a status out)."""
    return sorted({key(s) for t, s in taken if begin <= t <= end} - {None})


# ---------------------------------------------------------------------------------------

def scenario_kill_workers(ctx):
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    plan = {w: (point(rng, 0.15, 0.65), rng.uniform(0.5, 4.0)) for w in range(NUM_WORKERS)}
    for w, (at, delay) in sorted(plan.items()):
        print("plan: SIGKILL worker %d at %d of its %d pushes, restart it %.1f s later" %
              (w, at, share_pushes(), delay))
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir)
    cluster.start_all()
    killed = {}     # worker -> (time, its pushes the last status before the kill showed)
    restarted = set()
    deadline = time.time() + training_timeout(baseline)
    while len(restarted) < NUM_WORKERS:
        check(time.time() < deadline, "the kills and restarts did not happen within %ds: "
              "killed %s, restarted %s" % (training_timeout(baseline), sorted(killed),
                                           sorted(restarted)))
        cluster.check_alive()
        s = cluster.status()
        for w, (at, delay) in sorted(plan.items()):
            if w not in killed and pushes(s, w) >= at:
                check(cluster.workers[w].alive(), "worker %d ended before its kill point" % w)
                cluster.kill(cluster.workers[w])
                killed[w] = (time.time(), pushes(s, w))
                cluster.note("worker %d killed after about %d pushes" % (w, pushes(s, w)))
            elif w in killed and w not in restarted and time.time() >= killed[w][0] + delay:
                cluster.start_worker(w)
                restarted.add(w)
        time.sleep(0.2)
    evaluation, ledger = finish_and_compare(cluster, baseline)
    for w in range(NUM_WORKERS):
        process = cluster.workers[w]
        earlier = earlier_run(process.log_path)
        check(earlier is not None, "restarted worker %d did not count its earlier run's "
              "pushes (no '... were pushed by an earlier run' in %s)" % (w, process.log_path))
        examples, steps = earlier
        print("worker %d restarted: %d examples in %d steps pushed by its earlier run "
              "(status showed %d before the kill)" % (w, examples, steps, killed[w][1]))
        check(examples == steps * BATCH and killed[w][1] <= steps < share_pushes(),
              "worker %d's earlier run: %d examples in %d steps; expected %d per step and "
              "at least the %d pushes status showed before the kill" %
              (w, examples, steps, BATCH, killed[w][1]))
    for task in range(NUM_PS):
        refused = cluster.last_answer[task]["pushes_rejected"]
        check(refused["duplicate"] == 0 and refused["restarted"] == 0,
              "ps %d refused pushes (%s): the restarted workers' pushes must be applied, "
              "not taken for retries of their earlier runs'" % (task, refused))
    check_ledger(ledger, killed={w: 1 for w in range(NUM_WORKERS)})


def scenario_kill_ps(ctx):
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    victim = rng.randrange(NUM_PS)
    at, after, delay = point(rng, 0.2, 0.5), rng.uniform(0, 2.0), rng.uniform(1.0, 4.0)
    print("plan: once worker 0 reached %d pushes and ps %d has checkpointed, wait %.1f s, "
          "SIGKILL ps %d and restart it %.1f s later" % (at, victim, after, victim, delay))
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir)
    cluster.start_all()
    cluster.wait_for("worker 0 at %d pushes and a periodic checkpoint of ps %d" % (at, victim),
                     lambda s: pushes(s, 0) >= at and server(s, victim)["ok"] and
                     server(s, victim)["last_checkpoint"] is not None,
                     training_timeout(baseline))
    cluster.idle(after)
    dead = cluster.ps[victim]
    step_seen = cluster.last_answer[victim]["global_step"]
    cluster.kill(dead)
    checkpoint, checkpoint_step = last_match(PERIODIC_CHECKPOINT, dead.log(),
                                             "periodic checkpoint")
    cluster.note("ps %d killed (status last showed step %d; its last logged checkpoint is "
                 "step %d)" % (victim, step_seen, checkpoint_step))
    cluster.idle(delay)  # the workers must not exit meanwhile
    restarted = cluster.start_ps(victim)
    wait_answering(cluster, victim)
    path, restored_step = last_match(RESTORED, restarted.log(), "'restored ...' line")
    cluster.note("ps %d restored %s: step %d" % (victim, path, restored_step))
    # A checkpoint written after the last logged one may have completed before the kill.
    check(restored_step >= checkpoint_step,
          "ps %d restored step %d, older than its last logged checkpoint's %d" %
          (victim, restored_step, checkpoint_step))
    wait_steps(cluster, victim, restored_step + 200, training_timeout(baseline))
    evaluation, ledger = finish_and_compare(cluster, baseline, extra_seconds=delay)
    check_waited(cluster, victim)
    refused = cluster.last_answer[victim]["pushes_rejected"]["restarted"]
    print("ps %d refused %d pushes computed before its restart" % (victim, refused))
    # Both workers were training when the server died, so each has at least one push
    # computed from the dead run's weights (the one that waited for the server, whose
    # retries reach the new run first): never 0, whatever the timing.
    check(refused >= NUM_WORKERS, "ps %d refused %d pushes as computed before its restart "
          "(pushes_rejected.restarted); at least one per worker (%d) expected" %
          (victim, refused, NUM_WORKERS))
    check_ledger(ledger, exact_servers=False)
    check_survivors_exact(ledger, victim)
    lost = [share_pushes() - ledger_row(server(ledger, victim), w)["pushes"]
            for w in range(NUM_WORKERS)]
    print("pushes missing from ps %d's ledger per worker: %s (after its last checkpoint "
          "or refused)" % (victim, lost))


def check_survivors_exact(ledger, victim):
    """A server that was not disturbed applied every push of every worker."""
    for task in range(NUM_PS):
        if task == victim:
            continue
        for w in range(NUM_WORKERS):
            got = server_examples(ledger_row(server(ledger, task), w))
            check(got == share_examples(), "ps %d (not disturbed) applied %d examples of worker "
                  "%d, expected its whole share %d" % (task, got, w, share_examples()))


def scenario_term_ps(ctx):
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    victim, at, delay = rng.randrange(NUM_PS), point(rng, 0.2, 0.5), rng.uniform(1.0, 4.0)
    print("plan: SIGTERM ps %d when worker 0 reached %d pushes, restart it %.1f s after it "
          "exited" % (victim, at, delay))
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir)
    cluster.start_all()
    wait_pushes(cluster, 0, at, training_timeout(baseline))
    stopped = cluster.ps[victim]
    begin = time.time()
    cluster.signal(stopped, signal.SIGTERM)
    cluster.wait_exit(stopped, 30, "ps %d after SIGTERM" % victim)
    final_path, final_step = last_match(FINAL_CHECKPOINT, stopped.log(), "final checkpoint")
    cluster.note("ps %d exited 0 after %.1f s with its final checkpoint %s (step %d)" %
                 (victim, time.time() - begin, final_path, final_step))
    cluster.idle(delay)
    restarted = cluster.start_ps(victim)
    wait_answering(cluster, victim)
    path, restored_step = last_match(RESTORED, restarted.log(), "'restored ...' line")
    cluster.note("ps %d restored %s: step %d" % (victim, path, restored_step))
    check(restored_step == final_step and os.path.basename(path) ==
          os.path.basename(final_path),
          "ps %d wrote its final checkpoint %s at step %d but restored %s at step %d" %
          (victim, final_path, final_step, path, restored_step))
    wait_steps(cluster, victim, restored_step + 200, training_timeout(baseline))
    evaluation, ledger = finish_and_compare(cluster, baseline, extra_seconds=delay)
    check_waited(cluster, victim)
    check_ledger(ledger, exact_servers=False)
    check_survivors_exact(ledger, victim)
    # Nothing lost silently: a push missing from the restarted server's ledger is one it
    # refused because its weights came from before the restart (the worker pulls again).
    missing = sum(share_pushes() - ledger_row(server(ledger, victim), w)["pushes"]
                  for w in range(NUM_WORKERS))
    refused = cluster.last_answer[victim]["pushes_rejected"]["restarted"]
    print("ps %d: %d pushes missing from its final ledger, %d refused as computed before "
          "its restart" % (victim, missing, refused))
    check(missing <= refused, "ps %d's final ledger lacks %d pushes, but it refused only %d "
          "after its restart: %d were lost" % (victim, missing, refused, missing - refused))


def scenario_term_worker(ctx):
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    at, delay = point(rng, 0.25, 0.55), rng.uniform(2.0, 5.0)
    print("plan: SIGTERM worker 1 at %d pushes, restart it %.1f s after it exited" %
          (at, delay))
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir)
    cluster.start_all()
    before = pushes(wait_pushes(cluster, 1, at, training_timeout(baseline)), 1)
    stopped = cluster.workers[1]
    begin = time.time()
    cluster.signal(stopped, signal.SIGTERM)
    cluster.wait_exit(stopped, 30, "worker 1 after SIGTERM")
    took = time.time() - begin
    match = STOPPED.search(stopped.log())
    check(match is not None and match.group(1) == "1",
          "worker 1 exited 0 after SIGTERM without saying it stopped on request:\n%s" %
          stopped.log()[-2000:])
    steps = int(match.group(2))
    cluster.note("worker 1 exited 0 %.1f s after SIGTERM, after %d steps" % (took, steps))
    check(took <= 10, "worker 1 took %.1f s to stop; it finishes one step and its "
          "communication in flight" % took)
    check(steps >= before, "worker 1 says it stopped after %d steps; status had shown %d of "
          "its pushes" % (steps, before))
    # It pushed the step in progress (a push made after the stop still goes out once) and
    # waited for its communication in flight: every server applied exactly its steps, and
    # it did not tell them it finished.
    s = cluster.status()
    applied = {ledger_row(server(s, task), 1)["pushes"] for task in range(NUM_PS)}
    check(applied == {steps} and
          not any(ledger_row(server(s, t), 1)["finished"] for t in range(NUM_PS)),
          "after worker 1 stopped on request after %d steps the servers show %s; expected "
          "%d pushes on each and not finished" %
          (steps, [ledger_row(server(s, t), 1) for t in range(NUM_PS)], steps))
    pushed = ledger_row(server(s, 0), 1)["pushes"]
    chief_before = pushes(s, 0)
    cluster.idle(delay)
    chief_after = pushes(cluster.status(), 0)
    check(chief_after > chief_before and cluster.workers[0].alive(),
          "the chief stopped training while worker 1 was away (%d pushes, then %d)" %
          (chief_before, chief_after))
    cluster.start_worker(1)
    behind = follow_to_chief_end(cluster, training_timeout(baseline, delay))
    evaluation, ledger = finish_and_compare(cluster, baseline, extra_seconds=delay)
    earlier = earlier_run(cluster.workers[1].log_path)
    check(earlier == (pushed * BATCH, pushed),
          "restarted worker 1 says %s (examples, steps) were pushed by its earlier run; the "
          "servers had applied %d pushes of %d examples" % (earlier, pushed, BATCH))
    check_ledger(ledger)
    check_chief_waited(cluster, behind)
    check_final_step(evaluation, ledger)


def scenario_stop_ps(ctx):
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    victim, at = rng.randrange(NUM_PS), point(rng, 0.2, 0.5)
    print("plan: SIGSTOP ps %d for %d s when worker 0 reached %d pushes" %
          (victim, STOP_SECONDS, at))
    cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir)
    cluster.start_all()
    wait_pushes(cluster, 0, at, training_timeout(baseline))
    stopped = cluster.ps[victim]
    cluster.signal(stopped, signal.SIGSTOP)
    try:
        taken = cluster.idle(STOP_SECONDS)
    finally:
        cluster.signal(stopped, signal.SIGCONT)
    stopped.signalled = None  # it runs on and must exit 0 like the others
    survivor = 1 - victim
    answers = frozen(taken, lambda s: server(s, victim)["ok"], SETTLE_SECONDS, STOP_SECONDS)
    check(answers == [False], "the stopped ps %d answered status while stopped" % victim)
    steps = frozen(taken, lambda s: server(s, survivor)["global_step"]
                   if server(s, survivor)["ok"] else None, SETTLE_SECONDS, STOP_SECONDS)
    print("ps %d's global step while ps %d was stopped (after %d s): %s" %
          (survivor, victim, SETTLE_SECONDS, steps))
    check(len(steps) == 1, "ps %d's step moved (%s) while ps %d was stopped: the workers "
          "must block on the stopped server" % (survivor, steps, victim))
    resumed = wait_steps(cluster, victim, cluster.last_answer.get(victim, {}).get(
        "global_step", 0) + 200, 120)
    cluster.note("training resumed: ps %d at step %d" % (victim, server(resumed, victim)[
        "global_step"]))
    evaluation, ledger = finish_and_compare(cluster, baseline, extra_seconds=STOP_SECONDS)
    # A stopped process still holds its connections: calls to it time out.
    check_waited(cluster, victim, error="Deadline Exceeded")
    check_ledger(ledger)


# ---------------------------------------------------------------------------------------
# A worker behind a veth pair. Fixed names (the cluster tests run one at a time:
# RESOURCE_LOCK cluster_e2e), so that a crashed run's leftovers are found and removed.

NETNS = "mnfi-worker1"
HOST_VETH, NETNS_VETH = "mnfi-host", "mnfi-w1"
HOST_IP, NETNS_IP = "10.213.48.1", "10.213.48.2"


def ip(*args, netns=None):
    command = (["ip", "netns", "exec", netns] if netns else []) + ["ip"] + list(args)
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "`%s` failed: %s" % (" ".join(command), out.stderr.strip()))


def link_up():
    """NETNS holding NETNS_VETH (NETNS_IP), its peer HOST_VETH (HOST_IP) here."""
    link_down()
    ip("netns", "add", NETNS)
    ip("link", "add", HOST_VETH, "type", "veth", "peer", "name", NETNS_VETH)
    ip("link", "set", NETNS_VETH, "netns", NETNS)
    ip("addr", "add", HOST_IP + "/30", "dev", HOST_VETH)
    ip("link", "set", HOST_VETH, "up")
    ip("addr", "add", NETNS_IP + "/30", "dev", NETNS_VETH, netns=NETNS)
    ip("link", "set", NETNS_VETH, "up", netns=NETNS)
    ip("link", "set", "lo", "up", netns=NETNS)


def link_down():
    """Removes the pair and the namespace (this or an earlier, crashed run's)."""
    subprocess.run(["ip", "link", "del", HOST_VETH], capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, timeout=30)


def scenario_partition_worker(ctx):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("partition_worker needs root and iproute2 (`ip`) to create a network "
              "namespace and a veth pair; skipping")
        return SKIP
    baseline = read_baseline(ctx.baseline)
    rng = ctx.rng
    at = point(rng, 0.2, 0.45)
    print("plan: cut worker 1's link for %d s when it reached %d pushes" % (STOP_SECONDS, at))
    try:
        link_up()
    except Failure as e:
        link_down()
        print("cannot create a network namespace and veth pair (%s); skipping" % e)
        return SKIP
    try:
        # The servers listen on the host end's address: worker 1 reaches them through the
        # veth, everything else here as a local address.
        cluster = ctx.cluster = Cluster(ctx.bin_dir, ctx.run_dir, ps_host=HOST_IP,
                                        worker_prefix={1: ["ip", "netns", "exec", NETNS]})
        cluster.start_all()
        wait_pushes(cluster, 1, at, training_timeout(baseline))
        ip("link", "set", HOST_VETH, "down")
        cluster.note("link of worker 1 cut (%s down)" % HOST_VETH)
        try:
            taken = cluster.idle(STOP_SECONDS)
        finally:
            ip("link", "set", HOST_VETH, "up")
        cluster.note("link of worker 1 restored")
        cut_off = frozen(taken, lambda s: pushes(s, 1), SETTLE_SECONDS, STOP_SECONDS)
        chief = frozen(taken, lambda s: pushes(s, 0), SETTLE_SECONDS, STOP_SECONDS)
        print("during the cut (after %d s): worker 1's pushes %s, the chief's %s" %
              (SETTLE_SECONDS, cut_off, chief[:1] + chief[-1:]))
        check(len(cut_off) == 1, "worker 1's pushes still landed during the cut: %s" % cut_off)
        check(len(chief) > 1, "the chief did not train on while worker 1 was cut off: %s" %
              chief)
        resumed = cluster.wait_for("worker 1 to push again after the cut",
                                   lambda s: pushes(s, 1) > cut_off[0] + 50, 120)
        cluster.note("worker 1 continues: %d pushes" % pushes(resumed, 1))
        behind = follow_to_chief_end(cluster, training_timeout(baseline, STOP_SECONDS))
        evaluation, ledger = finish_and_compare(cluster, baseline, extra_seconds=STOP_SECONDS)
        log = cluster.workers[1].log()
        lines = [l for l in log.splitlines() if l.startswith("waiting: parameter server")]
        check(lines, "worker 1 never logged 'waiting: parameter server ...' during the cut "
              "(log %s)" % cluster.workers[1].log_path)
        print("worker 1: %d 'waiting:' line(s), first: %s" % (len(lines), lines[0][:200]))
        check_ledger(ledger)
        check_chief_waited(cluster, behind)
    finally:
        if ctx.cluster is not None:
            ctx.cluster.stop_everything()
        link_down()


SCENARIOS = {"kill_workers": scenario_kill_workers, "kill_ps": scenario_kill_ps,
             "term_ps": scenario_term_ps, "term_worker": scenario_term_worker,
             "stop_ps": scenario_stop_ps, "partition_worker": scenario_partition_worker}

if __name__ == "__main__":
    sys.exit(run_main(__doc__, SCENARIOS))
