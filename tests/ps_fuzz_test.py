#!/usr/bin/python3
"""Fuzz test of a real mobilenet-ps: thousands of random and adversarial requests of every
RPC from a client generated from the project's .proto (tests/ps_client_for_test.py), each
judged against a model of the server's validation (parameter_server/core/
request_validation.h), then the state checked, the server stopped and restored.

Requests: every field at random, the right plan fingerprint most of the time and wrong
ones sometimes, wrong shard indexes, ids and counts at their extremes (0, -1, 2^31-1,
2^62, INT64 min/max), random incarnations, NaN/inf/huge/denormal/negative floats in the
payloads, payloads of odd sizes (empty, not a multiple of 4, a float short or long,
double), random bytes that are no protobuf at all and mutated valid requests sent as raw
bytes, messages twice the server's size limit, and valid pushes (small finite
gradients, a recent version and incarnation) so that the shard advances. Finish is never
sent so that it would end the training (training_complete from the chief, or a finish of
both workers).

What is asserted:
  - every request is answered before its deadline, with a code the model expects: one
    code for requests that are invalid in a known way (a wrong plan is
    FAILED_PRECONDITION, an unknown worker INVALID_ARGUMENT naming worker_id, another
    run's incarnation ABORTED, ...), the documented set for the rest; bytes that do not
    parse are UNIMPLEMENTED (gRPC C++'s answer, grpc/grpc#30454), or INVALID_ARGUMENT from
    Pull's own parser; Python's protobuf (the same C++ library) decides what parses;
  - the server is alive after every phase; Status lists exactly num_workers workers;
  - the counters add up: global_step and pushes_applied grew by exactly the OK pushes
    that were not duplicates, examples_seen by their example counts, pushes_duplicate,
    pushes_invalid and pushes_rejected_restarted by what was answered so;
  - a retry of the last applied push of a worker is answered as a duplicate with the
    same receipt (sequential phase); an applied push's staleness is its version - 1 -
    computed_from_version;
  - every pull has the plan's sizes and only finite values, and two pulls of the same
    version return the same bytes (also while other threads push: no torn reads);
  - no periodic checkpoint failed (--checkpoint_every_secs=1);
  - SIGTERM (with the client still connected): exit 0 after a final checkpoint of the
    last step; restarted on the same folder it logs "restored" at that step, with the
    same examples seen, and pulls the same weights and statistics bit for bit; a second
    SIGTERM exits 0.

Phases: about 55% of --seconds sequential (exact version tracking), the rest with
--threads concurrent clients.

Usage: ps_fuzz_test.py --bin_dir DIR [--proto_dir DIR] [--seed N] [--seconds S]
                       [--threads N] [--keep]
Exit 0 when it passes, 1 when it fails.
"""

import argparse
import collections
import contextlib
import hashlib
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

from e2e_common import Failure, check
import ps_client_for_test as pst
from ps_client_for_test import (INT32_MAX, INT64_MAX, INT64_MIN, MAX_EXAMPLES_PER_PUSH,
                                UINT64_MAX, PsClient, PsProcess, ShardInfo)

try:
    import grpc
    import numpy
except ImportError as e:
    print("FAILED: %s: install Debian's python3-grpcio and python3-numpy" % e)
    sys.exit(1)

C = grpc.StatusCode
OK, FP, IA, ABORTED, RE, UNPARSED = (C.OK, C.FAILED_PRECONDITION, C.INVALID_ARGUMENT,
                                     C.ABORTED, C.RESOURCE_EXHAUSTED, C.UNIMPLEMENTED)
# What each RPC may answer at all (any request); the model narrows it per request.
DOCUMENTED = {
    "Pull": {OK, FP, IA, RE},
    "Push": {OK, FP, IA, ABORTED, RE},
    "GetStatus": {OK, RE},
    "ReportEvaluation": {OK, FP, IA, RE},
    "Finish": {OK, FP, IA, RE},
}
MAX_EVALUATION_EXAMPLES = 1 << 32
# Gradients from this magnitude make RMSprop's mean square overflow float32 (g^2 / 10 >
# 3.4e38): refused. Below SAFE_GRADIENT no update can overflow. Batch statistics up to
# SAFE_STATISTIC cannot make a moving average overflow.
OVERFLOWING_GRADIENT = 1e20
SAFE_GRADIENT = 1e19
SAFE_STATISTIC = 1e30
FAR_FUTURE = 10**12  # a version no shard reaches in a test
# Floats for payloads: ordinary, denormal, negative, large, and the ones that must be
# refused.
ORDINARY = [0.0, -0.0, 1e-3, -1e-3, 0.5, -2.0, 1e-45, -1e-45, 1e-40, 1.17e-38, 1e3, -1e6]
SPECIAL = [float("nan"), float("inf"), float("-inf"), 1e25, -1e30, 3.4e38, -3.4e38]
INT32_EDGES = [0, 1, 2, 3, -1, -2, -5, 300, INT32_MAX, -2**31]
INT64_EDGES = [0, 1, -1, 2, 2**31 - 1, 2**31, 2**62, INT64_MAX, INT64_MIN, 1 << 20,
               (1 << 20) + 1]
UINT64_EDGES = [0, 1, 2**63, UINT64_MAX, 12345]


class Expectation:
    """The codes a request may get and, for INVALID_ARGUMENT, what its message names."""

    def __init__(self, codes, mentions=()):
        self.codes = frozenset(codes)
        self.mentions = tuple(mentions)


@contextlib.contextmanager
def quiet_stderr():
    """Silences file descriptor 2 (libprotobuf's C++ logs parse errors there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Model:
    """What the server must answer to a request (request_validation.h, in order: the plan;
    every field; the incarnation; the values; the version; the optimizer's bounds)."""

    def __init__(self, info, incarnation, pb):
        self.info = info
        self.incarnation = incarnation
        self.pb = pb
        self.max_message = (info.parameter_count + info.state_count) * 4 + (64 << 10)
        self.parse_lock = threading.Lock()

    def too_big(self, size):
        if size > self.max_message + 64:
            return Expectation({RE})
        if size > self.max_message - 64:
            return Expectation({RE, OK, FP, IA, ABORTED})  # at the edge: not judged
        return None

    def plan_ok(self, message, shard=True):
        return (message.plan_fingerprint == self.info.fingerprint and
                (not shard or message.shard_index == self.info.shard_index))

    def member(self, worker_id):
        return 0 <= worker_id < self.info.num_workers

    def pull(self, message):
        if not self.plan_ok(message):
            return Expectation({FP})
        if message.weight_average:  # the server keeps none (--weight_ema_decay=0)
            return Expectation({FP})
        bad = []
        if message.worker_id != -1 and not self.member(message.worker_id):
            bad.append("worker_id")
        if message.training and message.worker_id == -1:  # a tool computes no gradients
            bad.append("training")
        if message.parameters_dtype not in pst.PAYLOAD_DTYPES:
            bad.append("parameters_dtype")
        return Expectation({IA}, bad) if bad else Expectation({OK})

    def push(self, message, version_low, version_exact, maybe_remembered):
        """`version_low`: the shard's version is at least this; `version_exact`: and
        exactly this (nothing else changes it); `maybe_remembered`: the (worker_id,
        request_id) of a push applied before, whose receipt answers a valid retry
        (OK, duplicate) before the version and the optimizer's bounds are looked at."""
        if not self.plan_ok(message):
            return Expectation({FP})
        bad = []
        if not self.member(message.worker_id):
            bad.append("worker_id")
        if not 1 <= message.example_count <= MAX_EXAMPLES_PER_PUSH:
            bad.append("example_count")
        if message.computed_from_version < 0:
            bad.append("computed_from_version")
        if message.worker_steps < 0:
            bad.append("worker_steps")
        if not (math.isfinite(message.worker_images_per_sec) and
                message.worker_images_per_sec >= 0):
            bad.append("worker_images_per_sec")
        dtype = message.gradients_dtype
        if dtype not in pst.PAYLOAD_DTYPES:
            bad.append("gradients_dtype")  # and the size is not judged
        elif len(message.gradients) != pst.payload_width(dtype) * self.info.parameter_count:
            bad.append("gradients")
        if len(message.batch_stats) not in (0, 4 * self.info.state_count):
            bad.append("batch_stats")
        if bad:
            return Expectation({IA}, bad)
        if message.server_incarnation not in (0, self.incarnation):
            return Expectation({ABORTED})
        gradients = pst.decode_payload(message.gradients, dtype)
        stats = pst.floats(message.batch_stats)
        if not numpy.isfinite(gradients).all() or not numpy.isfinite(stats).all():
            return Expectation({IA}, ["MobilenetV1/"])
        if len(stats) and any((stats[b:e] < 0).any() for b, e in self.info.variance_ranges):
            return Expectation({IA}, ["moving_variance"])
        applied = self.when_applied(message, version_low, version_exact)
        if maybe_remembered:
            return Expectation(applied.codes | {OK}, applied.mentions)
        return applied

    def when_applied(self, message, version_low, version_exact):
        """What the shard answers to a validated push: the version, then the bounds."""
        gradients = pst.decode_payload(message.gradients, message.gradients_dtype)
        stats = pst.floats(message.batch_stats)
        if message.computed_from_version > version_low:
            if version_exact or message.computed_from_version >= FAR_FUTURE:
                return Expectation({IA}, ["version"])
            return Expectation({OK, IA})
        largest = float(numpy.abs(gradients).max())
        if largest >= OVERFLOWING_GRADIENT:
            return Expectation({IA}, ["MobilenetV1/"])
        if largest >= SAFE_GRADIENT or (len(stats) and numpy.abs(stats).max() > SAFE_STATISTIC):
            return Expectation({OK, IA})
        return Expectation({OK})

    def evaluation(self, message):
        if not self.plan_ok(message, shard=False):
            return Expectation({FP})
        bad = []
        if message.worker_id != 0:
            bad.append("worker_id")
        if not (0 <= message.correct <= message.examples <= MAX_EVALUATION_EXAMPLES):
            bad.append("correct")
        if not (math.isfinite(message.loss) and message.loss >= 0):
            bad.append("loss")
        if message.global_step < 0:
            bad.append("global_step")
        if not (0 <= message.average_correct <= message.average_examples <=
                MAX_EVALUATION_EXAMPLES):
            bad.append("average_correct")
        if not (math.isfinite(message.average_loss) and message.average_loss >= 0):
            bad.append("average_loss")
        if message.class_names and not self.class_names_ok(list(message.class_names)):
            bad.append("class_names")
        return Expectation({IA}, bad) if bad else Expectation({OK})

    def num_classes(self):
        """The model's classes, from its ModelConfigString ("... classes=K ...")."""
        return int(re.search(r"\bclasses=(\d+)", self.info.model).group(1))

    def class_names_ok(self, names):
        """common/class_names.h: one per class, each 1..256 bytes of UTF-8 without control
        characters, 256 KiB together."""
        encoded = [name.encode("utf-8") for name in names]
        return (len(names) == self.num_classes() and
                all(0 < len(b) <= 256 for b in encoded) and
                not any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for n in names for ch in n) and
                sum(len(b) for b in encoded) <= 256 << 10)

    def finish(self, message):
        if not self.plan_ok(message, shard=False):
            return Expectation({FP})
        bad = []
        if not self.member(message.worker_id):
            bad.append("worker_id")
        if message.training_complete and message.worker_id != 0:
            bad.append("training_complete")
        return Expectation({IA}, bad) if bad else Expectation({OK})

    def ends_training(self, message):
        """A Finish the test must never send: it would end the training (the chief's, or
        the chief's finish after worker 1's)."""
        return self.plan_ok(message, shard=False) and message.worker_id == 0

    def parse(self, rpc, data):
        """The request message `data` parses to (same C++ protobuf library as the
        server's), or None."""
        message = {"Pull": self.pb.PullRequest, "Push": self.pb.PushRequest,
                   "GetStatus": self.pb.StatusRequest,
                   "ReportEvaluation": self.pb.EvaluationReport,
                   "Finish": self.pb.FinishRequest}[rpc]()
        # At a stray end-group tag the C++ parser stops, and Python's binding only warns
        # ("Unexpected end-group tag: Not all data was converted") where the server's
        # parse fails: a warning means it did not parse.
        with self.parse_lock, quiet_stderr(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                read = message.MergeFromString(data)
            except Exception:  # google.protobuf.message.DecodeError
                return None
        return message if read == len(data) and not caught else None


class Request:
    """One request to send: a message (or raw bytes) and what it must get."""

    def __init__(self, rpc, kind, payload, raw=False, message=None, expectation=None):
        self.rpc = rpc
        self.kind = kind
        self.payload = payload
        self.raw = raw
        self.message = message if message is not None else (None if raw else payload)
        self.expectation = expectation

    def describe(self):
        m = self.message
        if m is None:
            return "%d raw bytes %r..." % (len(self.payload), bytes(self.payload[:40]))
        fields = []
        for field, value in m.ListFields():
            if isinstance(value, bytes):
                value = "<%d bytes>" % len(value)
            fields.append("%s=%s" % (field.name, value))
        return "%s(%s)%s" % (type(m).__name__, ", ".join(fields), " (sent raw)" if self.raw else "")


class Tally:
    """What the server answered, and what it must therefore show. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_rpc_code = collections.Counter()
        self.by_kind = collections.Counter()
        self.applied = 0
        self.applied_examples = 0
        self.duplicates = 0
        self.push_refused_by_handler = 0  # FAILED_PRECONDITION and INVALID_ARGUMENT
        self.push_aborted = 0
        self.version_low = 0
        self.digests = {}  # (version, parameters_dtype) -> parameters digest
        self.state_digests = {}
        self.last_applied = {}  # worker -> (PushRequest, PushResponse)
        self.applied_ids = set()  # (worker_id, request_id) of every applied push
        self.recent_pulls = collections.deque(maxlen=16)  # PullResponse (no payloads)
        self.failure = None
        self.stop = threading.Event()

    def fail(self, message):
        with self.lock:
            if self.failure is None:
                self.failure = message
        self.stop.set()


class Fuzzer:
    """Generates requests, sends them, judges the answers. One per thread; `strict` when
    it is the only client (then the shard's version is known exactly)."""

    def __init__(self, client, model, tally, seed, strict, save_dir):
        self.client = client
        self.save_dir = save_dir
        self.model = model
        self.info = model.info
        self.pb = model.pb
        self.tally = tally
        self.rng = random.Random(seed)
        self.np = numpy.random.default_rng(seed)
        self.strict = strict
        self.last_step = -1
        self.generators = [
            (14, self.push_valid), (3, self.push_retry), (10, self.push_bad_field),
            (3, self.push_bad_fields), (5, self.push_wrong_plan), (3, self.push_wrong_shard),
            (4, self.push_wrong_incarnation), (8, self.push_bad_values),
            (3, self.push_future_version), (8, self.push_random), (1, self.push_oversized),
            (5, self.push_mutated), (8, self.pull_valid), (5, self.pull_invalid),
            (4, self.pull_random), (3, self.pull_mutated), (4, self.status),
            (2, self.evaluation_valid), (4, self.evaluation_invalid),
            (2, self.evaluation_random), (1, self.finish_valid), (3, self.finish_invalid),
            (2, self.finish_random), (6, self.raw_junk), (1, self.raw_oversized),
            (2, self.raw_unknown_fields)]
        self.weights = [w for w, _ in self.generators]

    # ---- values

    def pick(self, values):
        return self.rng.choice(values)

    def wrong_fingerprint(self):
        return self.pick([0, 1, UINT64_MAX, self.info.fingerprint ^ 1,
                          self.info.fingerprint ^ (1 << 63), self.rng.getrandbits(64)])

    def small_floats(self, count):
        return self.np.standard_normal(count, dtype=numpy.float32) * numpy.float32(1e-3)

    def palette_floats(self, count):
        """Ordinary values of every kind (denormal, negative, zero, ...)."""
        return numpy.asarray(ORDINARY, dtype="<f4")[self.np.integers(0, len(ORDINARY), count)]

    def with_specials(self, values, how_many=None):
        values = values.copy()
        for _ in range(how_many or self.rng.randint(1, 3)):
            values[self.rng.randrange(len(values))] = self.pick(SPECIAL)
        return values

    def gradients(self, dtype=0):
        return pst.encode_payload(self.small_floats(self.info.parameter_count), dtype)

    def payload_dtype(self):
        """Mostly float32, as most workers send; the 16-bit formats often enough."""
        return self.pick([0, 0, 1, 2])

    def batch_stats(self):
        return self.info.valid_batch_stats(self.np) if self.rng.random() < 0.5 else b""

    def odd_size(self, count, may_double=True):
        sizes = [0, 1, 2, 3, 4 * count - 4, 4 * count - 1, 4 * count + 1, 4 * count + 3,
                 4 * count + 4]
        if may_double:
            sizes.append(8 * count)
        return bytes(self.np.integers(0, 256, self.pick(sizes), dtype=numpy.uint8))

    def random_bytes(self, count):
        return self.rng.getrandbits(8 * count).to_bytes(count, "little") if count else b""

    def pulled(self):
        """A recent pull's version and incarnation (a fresh pull when none yet)."""
        with self.tally.lock:
            recent = list(self.tally.recent_pulls)
        if not recent:
            self.send(self.make_pull(worker_id=-1, include_state=False), kind="pull_valid")
            with self.tally.lock:
                recent = list(self.tally.recent_pulls)
        return self.pick(recent)

    def valid_push(self, **fields):
        pulled = self.pulled()
        dtype = fields.get("gradients_dtype", self.payload_dtype())
        if dtype not in pst.PAYLOAD_DTYPES:
            dtype = 0
        values = dict(worker_id=self.rng.randrange(self.info.num_workers),
                      gradients=self.gradients(dtype), gradients_dtype=dtype,
                      batch_stats=self.batch_stats(),
                      example_count=self.pick([1, 32, 64, 1000, MAX_EXAMPLES_PER_PUSH]),
                      worker_steps=self.rng.randrange(10**6),
                      worker_images_per_sec=self.pick([0.0, 12.5, 1e9]),
                      server_incarnation=self.pick([pulled.server_incarnation, 0]))
        values.update(fields)
        return self.client.push_request(self.info, pulled, **values)

    def make_pull(self, **fields):
        values = dict(plan_fingerprint=self.info.fingerprint, shard_index=self.info.shard_index,
                      include_state=self.rng.random() < 0.5,
                      worker_id=self.pick([-1, 0, 1]), model=self.info.model,
                      num_shards=self.info.num_shards, parameters_dtype=self.payload_dtype())
        values.update(fields)
        return self.pb.PullRequest(**values)

    def make_evaluation(self, **fields):
        examples = self.rng.randrange(10001)
        values = dict(plan_fingerprint=self.info.fingerprint, worker_id=0,
                      global_step=self.rng.randrange(10**6), examples=examples,
                      correct=self.rng.randrange(examples + 1),
                      loss=self.rng.uniform(0, 5), model=self.info.model,
                      num_shards=self.info.num_shards)
        values.update(fields)
        return self.pb.EvaluationReport(**values)

    def version_state(self):
        with self.tally.lock:
            return self.tally.version_low

    # ---- Push

    def push(self, kind, message):
        return Request("Push", kind, message)

    def push_valid(self):
        return self.push("push_valid", self.valid_push())

    def push_retry(self):
        with self.tally.lock:
            last = self.tally.last_applied.get(self.rng.randrange(self.info.num_workers))
        if last is None:
            return self.push_valid()
        return self.push("push_retry", last[0])

    BAD_FIELDS = {
        "worker_id": [2, 3, 300, -1, -5, INT32_MAX, -2**31],
        "example_count": [0, -1, (1 << 20) + 1, 2**62, INT64_MAX, INT64_MIN],
        "computed_from_version": [-1, -2**40, INT64_MIN],
        "worker_steps": [-1, INT64_MIN],
        "worker_images_per_sec": [float("nan"), float("inf"), float("-inf"), -1.0, -1e-300],
        "gradients": None,  # odd sizes
        "batch_stats": None,
        "gradients_dtype": [3, 7, -1, INT32_MAX, -2**31],
    }

    def broken(self, field):
        if field == "gradients":
            return self.odd_size(self.info.parameter_count, may_double=False)
        if field == "batch_stats":
            return self.odd_size(self.info.state_count)[:4 * self.info.state_count + 4] or b"x"
        return self.pick(self.BAD_FIELDS[field])

    def push_bad_field(self):
        field = self.pick(sorted(self.BAD_FIELDS))
        return self.push("push_bad_field", self.valid_push(**{field: self.broken(field)}))

    def push_bad_fields(self):
        fields = self.rng.sample(sorted(self.BAD_FIELDS), self.rng.randint(2, 5))
        # Also a wrong incarnation: fields are checked first.
        return self.push("push_bad_fields", self.valid_push(
            server_incarnation=self.rng.getrandbits(64),
            **{field: self.broken(field) for field in fields}))

    def push_wrong_plan(self):
        message = self.valid_push(plan_fingerprint=self.wrong_fingerprint())
        if self.rng.random() < 0.5:  # nothing else is looked at under another plan
            message.worker_id = self.pick(INT32_EDGES)
            message.gradients = self.odd_size(self.info.parameter_count, may_double=False)
        return self.push("push_wrong_plan", message)

    def push_wrong_shard(self):
        return self.push("push_wrong_shard", self.valid_push(
            shard_index=self.pick([1, 2, -1, INT32_MAX, -2**31])))

    def push_wrong_incarnation(self):
        incarnation = self.rng.getrandbits(64) | 1
        return self.push("push_wrong_incarnation", self.valid_push(server_incarnation=incarnation))

    def push_bad_values(self):
        choice = self.rng.randrange(5)
        if choice == 0:  # NaN / inf / huge among the gradients
            g = self.with_specials(self.small_floats(self.info.parameter_count))
            return self.push("push_nonfinite_or_huge", self.valid_push(gradients=g.tobytes()))
        if choice == 1:  # every gradient huge: RMSprop's mean square overflows
            value = self.pick([1e30, -1e30, 1e25, 3.4e38])
            return self.push("push_all_huge", self.valid_push(
                gradients=pst.float_bytes([value]) * self.info.parameter_count))
        stats = pst.floats(self.info.valid_batch_stats(self.np)).copy()
        if choice == 2:  # NaN / inf among the batch statistics
            stats[self.rng.randrange(len(stats))] = self.pick(SPECIAL[:3])
        else:  # a negative variance
            begin, end = self.pick(self.info.variance_ranges)
            stats[self.rng.randrange(begin, end)] = self.pick([-1.0, -1e-30, -1e-45, -3e38])
        return self.push("push_bad_statistics", self.valid_push(batch_stats=stats.tobytes()))

    def push_future_version(self):
        now = self.version_state()
        ahead = self.pick([1, 2, 1000, FAR_FUTURE, INT64_MAX - now]) if self.strict else \
            self.pick([FAR_FUTURE, INT64_MAX - now])
        return self.push("push_future_version",
                         self.valid_push(computed_from_version=now + ahead))

    def push_random(self):
        """Every field at random, from values of every kind."""
        rng = self.rng
        right = rng.random() < 0.8
        pulled = self.pulled()
        count = self.info.parameter_count
        if rng.random() < 0.75:
            g = self.palette_floats(count) if rng.random() < 0.5 else self.small_floats(count)
            if rng.random() < 0.3:
                g = self.with_specials(g)
            dtype = rng.choice([0, 0, 1, 2])
            gradients = pst.encode_payload(g, dtype)
        else:
            dtype = rng.choice([0, 0, 1, 2])
            gradients = self.odd_size(count)
        if rng.random() < 0.1:
            dtype = rng.choice(INT32_EDGES)
        if rng.random() < 0.5:
            stats = b""
        elif rng.random() < 0.7:
            stats = pst.floats(self.info.valid_batch_stats(self.np, rng.choice([1, 1e6, 1e35])))
            if rng.random() < 0.3:
                stats = self.with_specials(stats)
            stats = stats.tobytes()
        else:
            stats = self.odd_size(self.info.state_count)
        message = self.pb.PushRequest(
            plan_fingerprint=self.info.fingerprint if right else self.wrong_fingerprint(),
            shard_index=0 if rng.random() < 0.9 else rng.choice(INT32_EDGES),
            worker_id=rng.choice([0, 1, 0, 1] + INT32_EDGES),
            request_id=rng.choice(UINT64_EDGES + [rng.getrandbits(64)] * 4),
            computed_from_version=rng.choice([pulled.version] * 4 + INT64_EDGES),
            example_count=rng.choice([64] * 4 + INT64_EDGES),
            gradients=gradients, gradients_dtype=dtype, batch_stats=stats,
            worker_images_per_sec=rng.choice([1.0, 0.0, -0.0, 5e-324, 1e308, -1.0,
                                              float("nan"), float("inf")]),
            worker_steps=rng.choice([0, 7] + INT64_EDGES),
            model=rng.choice(["", self.info.model, "x" * 1000, "\u00e9\u4e2d\U0001f600"]),
            num_shards=rng.choice([0, 1, 2, -1, INT32_MAX]),
            server_incarnation=rng.choice([pulled.server_incarnation] * 3 + UINT64_EDGES))
        return self.push("push_random", message)

    def push_oversized(self):
        # Twice the server's largest message: refused by the transport, whatever it holds.
        return self.push("push_oversized", self.valid_push(
            gradients=bytes(2 * self.model.max_message)))

    def push_mutated(self):
        return self.mutated("Push", "push_mutated", self.valid_push().SerializeToString())

    # ---- Pull

    def pull_valid(self):
        return Request("Pull", "pull_valid", self.make_pull())

    def pull_invalid(self):
        choice = self.rng.randrange(4)
        if choice == 0:
            return Request("Pull", "pull_wrong_plan",
                           self.make_pull(plan_fingerprint=self.wrong_fingerprint()))
        if choice == 1:
            return Request("Pull", "pull_wrong_shard",
                           self.make_pull(shard_index=self.pick([1, -1, INT32_MAX, -2**31])))
        if choice == 2:
            return Request("Pull", "pull_unknown_worker", self.make_pull(
                worker_id=self.pick([2, 3, 300, -2, -5, INT32_MAX, -2**31])))
        return Request("Pull", "pull_unknown_dtype", self.make_pull(
            parameters_dtype=self.pick([3, 4, -1, INT32_MAX, -2**31])))

    def pull_random(self):
        rng = self.rng
        return Request("Pull", "pull_random", self.pb.PullRequest(
            plan_fingerprint=self.info.fingerprint if rng.random() < 0.7 else
            self.wrong_fingerprint(),
            shard_index=rng.choice([0, 0, 0] + INT32_EDGES),
            include_state=rng.random() < 0.5, worker_id=rng.choice([-1, 0, 1] + INT32_EDGES),
            weight_average=rng.random() < 0.1,
            model=rng.choice(["", self.info.model, "y" * 5000]),
            num_shards=rng.choice([0, 1, 2, -7, INT32_MAX]),
            parameters_dtype=rng.choice([0, 0, 1, 2] + INT32_EDGES)))

    def pull_mutated(self):
        return self.mutated("Pull", "pull_mutated", self.make_pull().SerializeToString())

    # ---- GetStatus, ReportEvaluation, Finish

    def status(self):
        return Request("GetStatus", "status", self.pb.StatusRequest())

    def evaluation_valid(self):
        return Request("ReportEvaluation", "evaluation_valid", self.make_evaluation())

    def evaluation_invalid(self):
        choice = self.rng.randrange(7)
        if choice == 0:
            fields = dict(plan_fingerprint=self.wrong_fingerprint(),
                          worker_id=self.pick(INT32_EDGES))
        elif choice == 1:
            fields = dict(worker_id=self.pick([1, 2, -1, INT32_MAX, -2**31]))
        elif choice == 2:
            fields = dict(examples=10, correct=self.pick([11, -1, INT64_MAX]))
        elif choice == 3:
            fields = dict(examples=self.pick([-1, INT64_MIN, MAX_EVALUATION_EXAMPLES + 1]),
                          correct=0)
        elif choice == 4:
            fields = dict(loss=self.pick([float("nan"), float("inf"), -1.0, float("-inf")]))
        elif choice == 5:
            fields = dict(global_step=self.pick([-1, INT64_MIN]))
        else:
            fields = dict(worker_id=1, examples=-5, correct=7, loss=float("nan"),
                          global_step=-1)
        return Request("ReportEvaluation", "evaluation_invalid", self.make_evaluation(**fields))

    def evaluation_random(self):
        rng = self.rng
        return Request("ReportEvaluation", "evaluation_random", self.pb.EvaluationReport(
            plan_fingerprint=self.info.fingerprint if rng.random() < 0.7 else
            self.wrong_fingerprint(),
            worker_id=rng.choice([0, 0] + INT32_EDGES), global_step=rng.choice(INT64_EDGES),
            examples=rng.choice(INT64_EDGES + [100]), correct=rng.choice(INT64_EDGES + [50]),
            loss=rng.choice([0.0, 1.5, -0.0, 5e-324, 1e308, -1.0, float("nan"), float("inf")]),
            average_examples=rng.choice([0, 0, 100] + INT64_EDGES),
            average_correct=rng.choice([0, 0, 50] + INT64_EDGES),
            average_loss=rng.choice([0.0, 0.0, 1.5, -1.0, float("nan")]),
            model=rng.choice(["", "z" * 3000]), num_shards=rng.choice([0, 1, -1]),
            class_names=self.invalid_class_names()))

    def invalid_class_names(self):
        """None (mostly), or names every server refuses: a valid list would be kept for
        good and make every other list a FAILED_PRECONDITION."""
        k = self.model.num_classes()
        return self.rng.choice([[], [], [], ["one"] * (k + 1), ["n"] * (k - 1) + [""],
                                ["x" * 257] * k, ["tab\there"] * k, ["\u0085"] * k])

    def finish_valid(self):
        # Worker 1 only: the chief's finish would end the training after it.
        return Request("Finish", "finish_valid", self.pb.FinishRequest(
            plan_fingerprint=self.info.fingerprint, worker_id=1, model=self.info.model,
            num_shards=self.info.num_shards))

    def finish_invalid(self):
        choice = self.rng.randrange(3)
        if choice == 0:
            message = self.pb.FinishRequest(plan_fingerprint=self.info.fingerprint,
                                            worker_id=self.pick([2, 300, -1, INT32_MAX, -2**31]),
                                            training_complete=self.rng.random() < 0.5)
        elif choice == 1:
            message = self.pb.FinishRequest(plan_fingerprint=self.info.fingerprint,
                                            worker_id=1, training_complete=True)
        else:  # even the chief's, under another plan
            message = self.pb.FinishRequest(plan_fingerprint=self.wrong_fingerprint(),
                                            worker_id=self.pick([0, 1, 5]),
                                            training_complete=self.rng.random() < 0.5)
        return Request("Finish", "finish_invalid", message)

    def finish_random(self):
        rng = self.rng
        while True:
            message = self.pb.FinishRequest(
                plan_fingerprint=self.info.fingerprint if rng.random() < 0.7 else
                self.wrong_fingerprint(),
                worker_id=rng.choice([1, 1] + INT32_EDGES),
                training_complete=rng.random() < 0.3, model=rng.choice(["", "w" * 100]),
                num_shards=rng.choice([0, 1, 3]))
            if not self.model.ends_training(message):
                return Request("Finish", "finish_random", message)

    # ---- raw bytes

    def raw_request(self, rpc, kind, data):
        """`data` sent as is; judged by what it parses to (None: UNIMPLEMENTED, or
        INVALID_ARGUMENT from Pull's own parser). None when it must not be sent."""
        message = self.model.parse(rpc, data)
        if rpc == "Finish" and message is not None and self.model.ends_training(message):
            return None
        return Request(rpc, kind, data, raw=True, message=message)

    def mutated(self, rpc, kind, data):
        data = bytearray(data)
        choice = self.rng.randrange(4)
        if choice == 0:  # flip bytes (the header part more often than the payload)
            for _ in range(self.rng.randint(1, 6)):
                i = self.rng.randrange(min(len(data), 64)) if self.rng.random() < 0.7 \
                    else self.rng.randrange(len(data))
                data[i] = self.rng.randrange(256)
        elif choice == 1:  # truncated
            data = data[:self.rng.randrange(len(data))]
        elif choice == 2:  # junk appended
            data += self.random_bytes(self.rng.randint(1, 40))
        else:  # a field repeated (the last one wins) or of another wire type
            data += self.pick([pst.fixed64_field(1, self.wrong_fingerprint()),
                               pst.fixed64_field(1, self.info.fingerprint),
                               pst.varint(3 << 3) + pst.varint(self.rng.getrandbits(64)),
                               pst.bytes_field(3, b"no"), pst.bytes_field(5, b"\xff\xfe")])
        request = self.raw_request(rpc, kind, bytes(data))
        return request or self.status()

    def raw_junk(self):
        rpc = self.pick(list(DOCUMENTED))
        size = self.pick([0, 1, 2, 5, 17, 100, 1000, 20000])
        data = self.random_bytes(size) if self.rng.random() < 0.7 else \
            bytes([self.pick([0x08, 0x0a, 0x09, 0x12, 0xff, 0x80])]) * size
        return self.raw_request(rpc, "raw_junk", data) or self.status()

    def raw_oversized(self):
        rpc = self.pick(list(DOCUMENTED))
        return Request(rpc, "raw_oversized",
                       pst.bytes_field(99, bytes(2 * self.model.max_message)), raw=True,
                       message=None, expectation=Expectation({RE}))

    def raw_unknown_fields(self):
        """A valid request with fields this version does not know: still valid."""
        rpc = self.pick(["Pull", "Push", "GetStatus", "ReportEvaluation", "Finish"])
        message = {"Pull": self.make_pull, "Push": self.valid_push,
                   "GetStatus": self.pb.StatusRequest,
                   "ReportEvaluation": self.make_evaluation, "Finish": self.finish_valid}[rpc]()
        if rpc == "Finish":
            message = message.payload
        extra = pst.varint(99 << 3) + pst.varint(self.rng.getrandbits(64)) + \
            pst.bytes_field(1000, self.random_bytes(self.rng.randint(0, 100)))
        data = message.SerializeToString()
        data = extra + data if self.rng.random() < 0.5 else data + extra
        return self.raw_request(rpc, "raw_unknown_fields", data) or self.status()

    # ---- judging

    def expectation(self, request):
        if request.expectation is not None:
            return request.expectation
        size = len(request.payload) if request.raw else request.payload.ByteSize()
        big = self.model.too_big(size)
        if big is not None:
            return big
        m = request.message
        if m is None:  # does not parse
            return Expectation({UNPARSED, IA} if request.rpc == "Pull" else {UNPARSED})
        if request.rpc == "Pull":
            return self.model.pull(m)
        if request.rpc == "Push":
            with self.tally.lock:
                remembered = (m.worker_id, m.request_id) in self.tally.applied_ids
            return self.model.push(m, self.version_state(), self.strict, remembered)
        if request.rpc == "GetStatus":
            return Expectation({OK})
        if request.rpc == "ReportEvaluation":
            return self.model.evaluation(m)
        return self.model.finish(m)

    def send(self, request, kind=None):
        if isinstance(request, self.pb.PullRequest):
            request = Request("Pull", kind, request)
        expectation = self.expectation(request)
        if request.raw:
            outcome = self.client.raw(request.rpc, request.payload)
        else:
            outcome = self.client.call(request.rpc, request.payload)
        with self.tally.lock:
            self.tally.by_rpc_code[(request.rpc, outcome.code.name)] += 1
            self.tally.by_kind[request.kind] += 1
        if outcome.code not in expectation.codes or \
                outcome.code not in DOCUMENTED[request.rpc] | {UNPARSED}:
            raise Failure("%s (%s): expected %s, got %s %r\n  request: %s%s" % (
                request.rpc, request.kind, "/".join(sorted(c.name for c in expectation.codes)),
                outcome.code.name, outcome.details[:600], request.describe()[:1500],
                self.save(request)))
        if outcome.code == IA:
            for text in expectation.mentions:
                check(text in outcome.details,
                      "%s (%s): the INVALID_ARGUMENT message does not name %r: %r\n  "
                      "request: %s" % (request.rpc, request.kind, text, outcome.details[:600],
                                       request.describe()[:1500]))
        if request.rpc == "Push":
            self.after_push(request, outcome)
        elif request.rpc == "Pull" and outcome.code == OK:
            self.after_pull(request, outcome)
        elif request.rpc == "GetStatus" and outcome.code == OK and not request.raw:
            self.after_status(outcome.response)
        return outcome

    def save(self, request):
        """Writes the request's bytes next to the logs, for a reproduction."""
        data = request.payload if request.raw else request.payload.SerializeToString()
        path = os.path.join(self.save_dir, "failed-%s-request.bin" % request.rpc)
        with open(path, "wb") as f:
            f.write(data)
        return "\n  its bytes: %s (send them with ps_client_for_test.PsClient.raw)" % path

    def after_push(self, request, outcome):
        t = self.tally
        if outcome.code in (FP, IA):  # the handler's (the transport answers neither)
            with t.lock:
                t.push_refused_by_handler += 1
        if outcome.code == ABORTED:
            with t.lock:
                t.push_aborted += 1
        if outcome.code != OK:
            return
        m = request.message
        r = outcome.response if not request.raw else self.pb.PushResponse.FromString(
            outcome.response)
        with t.lock:
            if r.duplicate:
                t.duplicates += 1
                original = t.last_applied.get(m.worker_id)
            else:
                t.applied += 1
                t.applied_examples += m.example_count
                expected_version = t.version_low + 1
                t.version_low = max(t.version_low, r.version)
                t.last_applied[m.worker_id] = (m, r)
                t.applied_ids.add((m.worker_id, m.request_id))
        if r.duplicate:
            if self.strict and request.kind == "push_retry":
                check(original is not None and original[0].request_id == m.request_id and
                      original[1].version == r.version and
                      original[1].staleness == r.staleness,
                      "a retry of worker %d's push %d: receipt version %d staleness %d, the "
                      "push was applied as version %s" %
                      (m.worker_id, m.request_id, r.version, r.staleness,
                       original[1].version if original else None))
            return
        check(self.strict is False or request.kind != "push_retry",
              "a retry of worker %d's last applied push (request %d) was applied again" %
              (m.worker_id, m.request_id))
        check(r.staleness == r.version - 1 - m.computed_from_version,
              "push applied as version %d computed from %d reports staleness %d" %
              (r.version, m.computed_from_version, r.staleness))
        check(math.isfinite(r.learning_rate) and r.learning_rate >= 0,
              "push answered learning rate %r" % r.learning_rate)
        if self.strict:
            check(r.version == expected_version, "push applied as version %d, expected %d" %
                  (r.version, expected_version))

    def after_pull(self, request, outcome):
        m = request.message
        r = outcome.response if not request.raw else self.pb.PullResponse.FromString(
            outcome.response)
        t = self.tally
        dtype = m.parameters_dtype
        width = pst.payload_width(dtype)
        check(len(r.parameters) == width * self.info.parameter_count,
              "pull (parameters_dtype %d): %d parameter bytes, expected %d" %
              (dtype, len(r.parameters), width * self.info.parameter_count))
        check(r.parameters_dtype == dtype, "pull: parameters_dtype %d answered, %d asked" %
              (r.parameters_dtype, dtype))
        check(len(r.state) == (4 * self.info.state_count if m.include_state else 0),
              "pull (include_state %s): %d state bytes" % (m.include_state, len(r.state)))
        for field, field_dtype in (("parameters", dtype), ("state", 0)):
            bad = pst.count_non_finite(getattr(r, field), field_dtype)
            check(bad == 0, "pull of version %d: %d non-finite values in %s" %
                  (r.version, bad, field))
        check(r.server_incarnation == self.model.incarnation,
              "pull: incarnation %d, this run's is %d" % (r.server_incarnation,
                                                          self.model.incarnation))
        # One version's weights in every format: a 16-bit pull is the float32 weights
        # rounded (by the test's own reference conversion).
        digests = {(r.version, dtype): hashlib.sha1(r.parameters).hexdigest()}
        if dtype == 0:
            values = pst.floats(r.parameters)
            for rounded in (1, 2):
                digests[(r.version, rounded)] = hashlib.sha1(
                    pst.encode_payload(values, rounded)).hexdigest()
        state_digest = hashlib.sha1(r.state).hexdigest() if m.include_state else None
        with t.lock:
            if self.strict:
                check(r.version == t.version_low, "pull: version %d, the shard is at %d" %
                      (r.version, t.version_low))
            check(r.version >= 0 and r.version >= (t.version_low if self.strict else 0),
                  "pull: version %d" % r.version)
            for (version, in_dtype), digest in digests.items():
                known = t.digests.setdefault((version, in_dtype), digest)
                check(known == digest, "two pulls of version %d returned different weights "
                      "(parameters_dtype %d)" % (version, in_dtype))
            if state_digest is not None:
                known = t.state_digests.setdefault(r.version, state_digest)
                check(known == state_digest, "two pulls of version %d returned different "
                      "statistics" % r.version)
            t.version_low = max(t.version_low, r.version)
            t.recent_pulls.append(self.pb.PullResponse(version=r.version,
                                                       server_incarnation=r.server_incarnation))

    def after_status(self, status):
        ids = [w.worker_id for w in status.workers]
        check(ids == list(range(self.info.num_workers)) and
              status.num_workers == self.info.num_workers,
              "Status lists workers %s for %d workers" % (ids[:20], self.info.num_workers))
        check(status.global_step >= self.last_step, "global step went back from %d to %d" %
              (self.last_step, status.global_step))
        check(not status.finishing and not status.training_complete,
              "the server is finishing (training_complete %s)" % status.training_complete)
        self.last_step = status.global_step
        if self.strict:
            with self.tally.lock:
                check(status.global_step == self.tally.version_low,
                      "Status: global step %d, expected %d" % (status.global_step,
                                                              self.tally.version_low))

    def run(self, seconds):
        deadline = time.time() + seconds
        try:
            while time.time() < deadline and not self.tally.stop.is_set():
                generate = self.rng.choices(self.generators, weights=self.weights)[0][1]
                self.send(generate())
        except Failure as e:
            self.tally.fail(str(e))
        except Exception as e:  # a bug of the test itself: report it, do not hang
            self.tally.fail("the fuzzer raised %s: %s" % (type(e).__name__, e))


# ---- phases and checks


class Baseline:
    """Counters at the start of the fuzz."""

    def __init__(self, status):
        self.step = status.global_step
        self.applied = status.pushes_applied
        self.examples = status.examples_seen
        self.duplicates = status.pushes_duplicate
        self.invalid = status.pushes_invalid
        self.restarted = status.pushes_rejected_restarted


def check_counters(client, tally, base, ps, phase):
    check(ps.running(), "%s: the server died (exit %s):\n%s" % (phase, ps.proc.poll(), ps.tail()))
    s = client.status()
    expected = {
        "global_step": (s.global_step - base.step, tally.applied),
        "pushes_applied": (s.pushes_applied - base.applied, tally.applied),
        "examples_seen": (s.examples_seen - base.examples, tally.applied_examples),
        "pushes_duplicate": (s.pushes_duplicate - base.duplicates, tally.duplicates),
        "pushes_invalid": (s.pushes_invalid - base.invalid, tally.push_refused_by_handler),
        "pushes_rejected_restarted": (s.pushes_rejected_restarted - base.restarted,
                                      tally.push_aborted),
    }
    for name, (grown, answered) in expected.items():
        check(grown == answered, "%s: Status.%s grew by %d, the answers say %d" %
              (phase, name, grown, answered))
    ids = [w.worker_id for w in s.workers]
    check(ids == [0, 1], "%s: Status lists workers %s" % (phase, ids[:20]))
    print("%s: step %d (+%d applied, %d duplicates, %d refused, %d from another run)" %
          (phase, s.global_step, tally.applied, tally.duplicates, tally.push_refused_by_handler,
           tally.push_aborted))
    return s


def print_counts(tally):
    print("requests by RPC and code:")
    rpcs = sorted({rpc for rpc, _ in tally.by_rpc_code})
    for rpc in rpcs:
        codes = sorted((code, n) for (r, code), n in tally.by_rpc_code.items() if r == rpc)
        print("  %-17s %6d  %s" % (rpc, sum(n for _, n in codes),
                                   ", ".join("%s %d" % c for c in codes)))
    by_code = collections.Counter()
    for (_, code), n in tally.by_rpc_code.items():
        by_code[code] += n
    print("  %-17s %6d  %s" % ("all", sum(by_code.values()),
                               ", ".join("%s %d" % c for c in sorted(by_code.items()))))
    print("requests by kind: %s" % ", ".join("%s %d" % k for k in sorted(tally.by_kind.items())))


def fuzz(bin_dir, stubs, run_dir, seed, seconds, threads):
    ps = PsProcess(bin_dir, run_dir, os.path.join(run_dir, "checkpoints"),
                   # Pushes claim up to 2^20 examples each: an epoch that long keeps the
                   # learning rate from decaying to 0 (updates that change nothing).
                   extra=["--checkpoint_every_secs=1", "--examples_per_epoch=1000000000000"])
    clients = []
    try:
        ps.start()
        client = PsClient(stubs, ps.address, deadline_secs=20)
        clients.append(client)
        status = ps.wait_serving(client)
        info = ShardInfo(status)
        check(info.num_workers == 2, "Status.num_workers %d, expected 2" % info.num_workers)
        incarnation = client.pull(info).server_incarnation
        model = Model(info, incarnation, stubs.pb)
        tally = Tally()
        base = Baseline(status)
        print("fuzzing %s (plan %016x, %d + %d floats, message limit %d) for %ds, seed %d" %
              (ps.address, info.fingerprint, info.parameter_count, info.state_count,
               model.max_message, seconds, seed))

        # Sequential: the only client, the version known exactly.
        started = time.time()
        sequential = Fuzzer(client, model, tally, seed, strict=True, save_dir=run_dir)
        sequential.run(seconds * 0.55)
        if tally.failure:
            raise Failure(tally.failure)
        check_counters(client, tally, base, ps, "after %.0fs sequential" % (time.time() - started))

        # Concurrent: several clients (each its own channel) at once.
        fuzzers = []
        for i in range(threads):
            c = PsClient(stubs, ps.address, deadline_secs=20)
            clients.append(c)
            fuzzers.append(Fuzzer(c, model, tally, seed * 1000 + i + 1, strict=False,
                                  save_dir=run_dir))
        workers = [threading.Thread(target=f.run, args=(seconds * 0.45,), daemon=True)
                   for f in fuzzers]
        phase_start = time.time()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if tally.failure:
            raise Failure(tally.failure)
        final_status = check_counters(client, tally, base, ps, "after %.0fs with %d threads" %
                                      (time.time() - phase_start, threads))
        print_counts(tally)
        check(tally.applied > 0 and final_status.global_step > base.step,
              "no push was applied")

        # The last state, then a stop (the client still connected) and a restart.
        last = client.pull(info, include_state=True)
        check(last.version == final_status.global_step, "pulled version %d, Status step %d" %
              (last.version, final_status.global_step))
        for field in ("parameters", "state"):
            check(pst.count_non_finite(getattr(last, field)) == 0, "non-finite %s" % field)
        log = ps.log()
        check("checkpoint failed" not in log, "a periodic checkpoint failed:\n%s" %
              "\n".join(line for line in log.splitlines() if "checkpoint failed" in line)[:3000])
        periodic = len(re.findall(r"\] checkpoint \S+ \(step \d+\)", log))
        check(periodic > 0, "no periodic checkpoint in %ds with --checkpoint_every_secs=1" %
              seconds)
        code = ps.terminate()
        check(code == 0, "exit %d after SIGTERM, expected 0:\n%s" % (code, ps.tail()))
        log = ps.log()
        match = re.search(r"(?:final checkpoint|no change since checkpoint) \S+ \(step (\d+)\)",
                          log)
        check(match is not None and int(match.group(1)) == last.version,
              "no final checkpoint of step %d:\n%s" % (last.version, ps.tail()))
        print("SIGTERM: exit 0, %d periodic checkpoints, final at step %s" %
              (periodic, match.group(1)))
        for c in clients:
            c.close()
        clients = []

        ps.start()
        client = PsClient(stubs, ps.address, deadline_secs=20)
        clients.append(client)
        restored = ps.wait_serving(client)
        match = re.search(r"restored \S+: step (\d+)", ps.log())
        check(match is not None and int(match.group(1)) == last.version,
              "the restart did not log \"restored ...: step %d\":\n%s" % (last.version, ps.tail()))
        check(restored.global_step == last.version and
              restored.examples_seen == final_status.examples_seen,
              "restarted at step %d with %d examples, expected step %d with %d" %
              (restored.global_step, restored.examples_seen, last.version,
               final_status.examples_seen))
        again = client.pull(info, include_state=True)
        check(again.version == last.version and again.parameters == last.parameters and
              again.state == last.state,
              "after the restart the pulled weights or statistics differ from the last pull "
              "before the stop (version %d vs %d)" % (again.version, last.version))
        check(again.server_incarnation != incarnation, "the restarted server kept its "
              "incarnation")
        check([w.worker_id for w in restored.workers] == [0, 1], "restored worker table %s" %
              [w.worker_id for w in restored.workers])
        client.close()
        clients = []
        code = ps.terminate()
        check(code == 0, "exit %d after the second SIGTERM:\n%s" % (code, ps.tail()))
        print("restart: restored step %d, weights and statistics identical; exit 0 again" %
              restored.global_step)
    finally:
        for c in clients:
            c.close()
        ps.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--proto_dir", default=pst.default_proto_dir())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=45,
                        help="time budget of the requests (the whole test takes ~15s more)")
    parser.add_argument("--threads", type=int, default=4,
                        help="clients of the concurrent phase")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    # A SIGTERM (ctest's timeout) ends the test through its cleanup: no server left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))
    run_dir = tempfile.mkdtemp(prefix="ps_fuzz_")
    print("run folder %s" % run_dir)
    start = time.time()
    ok = False
    try:
        stubs = pst.load_stubs(args.proto_dir, os.path.join(run_dir, "stubs"))
        bin_dir = pst.copy_binaries(args.bin_dir, os.path.join(run_dir, "bin"))
        fuzz(bin_dir, stubs, run_dir, args.seed, args.seconds, args.threads)
        ok = True
    except Failure as e:
        print("FAILED: %s" % e)
    finally:
        if not ok:
            pst.dump_logs(run_dir)
        if ok and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print("%s in %.0fs" % ("PASSED" if ok else "FAILED", time.time() - start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
