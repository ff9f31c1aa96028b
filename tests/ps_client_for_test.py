"""What the tests that talk to a real mobilenet-ps over gRPC share (ps_fuzz_test.py,
hostile_requests_test.py): Python stubs generated from the project's .proto at run time,
a client with hand-raised message limits whose calls return a status instead of raising,
a real mobilenet-ps started and stopped on loopback, float32 payloads, and a process's
resident memory.

Needs Debian's /usr/bin/python3 with python3-grpcio, python3-protobuf and python3-numpy,
and protoc with the gRPC Python plugin (protobuf-compiler, protobuf-compiler-grpc).
"""

import collections
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from e2e_common import Failure, check, free_ports

# The small model of the end-to-end tests: a 0.84 MB shard, quick to push and to pull.
MODEL_FLAGS = ["--alpha=0.25", "--resolution=28"]
NUM_WORKERS = 2
SERVICE = "/mobilenet.ps.v1.ParameterServer/"
RPCS = ("Pull", "Push", "GetStatus", "ReportEvaluation", "Finish", "LeaseData")
PROTO_FILE = "mobilenet/ps/v1/parameter_server.proto"
# Far above any limit the server sets, so that the client sends what the test builds and
# the server's own limits are what refuses it.
CLIENT_MESSAGE_LIMIT = 1 << 30
CLIENT_OPTIONS = [("grpc.max_send_message_length", CLIENT_MESSAGE_LIMIT),
                  ("grpc.max_receive_message_length", CLIENT_MESSAGE_LIMIT)]
BINARIES = ("mobilenet-ps", "mobilenet-worker")
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_EXAMPLES_PER_PUSH = 1 << 20


def default_proto_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "proto")


def import_or_fail(module, package):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Failure("cannot import %s (%s): install Debian's %s" % (module, e, package))


class Stubs:
    """The generated modules: `pb` (messages) and `grpc_pb` (the ParameterServer stub)."""

    def __init__(self, pb, grpc_pb):
        self.pb = pb
        self.grpc_pb = grpc_pb


def load_stubs(proto_dir, out_dir):
    """Generates the Python messages and stubs of the parameter-server protocol into
    `out_dir` with protoc and imports them. Failure naming the Debian package that is
    missing."""
    import_or_fail("grpc", "python3-grpcio")
    import_or_fail("google.protobuf", "python3-protobuf")
    import_or_fail("numpy", "python3-numpy")
    protoc = shutil.which("protoc")
    check(protoc is not None, "protoc not found: install Debian's protobuf-compiler")
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    check(os.path.exists(plugin),
          "grpc_python_plugin not found: install Debian's protobuf-compiler-grpc")
    check(os.path.exists(os.path.join(proto_dir, PROTO_FILE)),
          "no %s under --proto_dir %s" % (PROTO_FILE, proto_dir))
    os.makedirs(out_dir, exist_ok=True)
    out = subprocess.run([protoc, "-I", proto_dir, "--python_out=" + out_dir,
                          "--grpc_out=" + out_dir, "--plugin=protoc-gen-grpc=" + plugin,
                          os.path.join(proto_dir, PROTO_FILE)],
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "protoc failed to generate the Python stubs (exit %d): %s" %
          (out.returncode, out.stderr.strip()))
    sys.path.insert(0, out_dir)
    pb = import_or_fail("mobilenet.ps.v1.parameter_server_pb2", "python3-protobuf")
    grpc_pb = import_or_fail("mobilenet.ps.v1.parameter_server_pb2_grpc", "python3-grpcio")
    return Stubs(pb, grpc_pb)


def copy_binaries(bin_dir, dest_dir):
    """Copies the binaries under test into `dest_dir` (so that a rebuild of `bin_dir`
    while the test runs does not change them); returns `dest_dir`."""
    os.makedirs(dest_dir, exist_ok=True)
    for name in BINARIES:
        source = os.path.join(bin_dir, name)
        check(os.path.exists(source), "no %s in --bin_dir %s" % (name, bin_dir))
        shutil.copy2(source, os.path.join(dest_dir, name))
    return dest_dir


# ---- payloads


def floats(data):
    """The float32 little-endian values of `data` as a numpy array (a view)."""
    import numpy
    return numpy.frombuffer(data, dtype="<f4")


def float_bytes(values):
    import numpy
    return numpy.asarray(values, dtype="<f4").tobytes()


def count_non_finite(data, dtype=0):
    import numpy
    return int(numpy.count_nonzero(~numpy.isfinite(decode_payload(data, dtype))))


# PayloadDtype (parameter_server.proto): 0 float32, 1 bfloat16, 2 float16.
PAYLOAD_DTYPES = (0, 1, 2)


def payload_width(dtype):
    """Bytes of one value of PayloadDtype `dtype` (a known one)."""
    return 4 if dtype == 0 else 2


def decode_payload(data, dtype):
    """The values of payload `data` in PayloadDtype `dtype` (a known one), as float32."""
    import numpy
    if dtype == 1:
        return (numpy.frombuffer(data, dtype="<u2").astype(numpy.uint32) << 16).view("<f4")
    if dtype == 2:
        return numpy.frombuffer(data, dtype="<f2").astype(numpy.float32)
    return floats(data)


def encode_payload(values, dtype):
    """`values` as payload bytes in PayloadDtype `dtype`, rounded to nearest even (an
    independent reference for the servers' and workers' conversions)."""
    import numpy
    values = numpy.asarray(values, dtype="<f4")
    if dtype == 1:
        bits = values.view("<u4").astype(numpy.uint64)
        rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
        quiet = (bits >> 16) | 0x40
        return numpy.where(numpy.isnan(values), quiet, rounded).astype("<u2").tobytes()
    if dtype == 2:
        with numpy.errstate(over="ignore"):
            return values.astype("<f2").tobytes()
    return values.tobytes()


def varint(value):
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def bytes_field(number, data):
    """Field `number` of wire type 2 (bytes), for hand-built messages too big to build
    through the Python protobuf library cheaply."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def fixed64_field(number, value):
    return varint(number << 3 | 1) + value.to_bytes(8, "little")


# ---- the client


Outcome = collections.namedtuple("Outcome", "code details response")


class ShardInfo:
    """What a valid request to one server must carry, from its GetStatus answer."""

    def __init__(self, status):
        self.fingerprint = status.plan_fingerprint
        self.shard_index = status.shard_index
        self.num_shards = status.num_shards
        self.model = status.model
        self.parameter_count = status.parameter_count
        self.state_count = status.state_count
        self.num_workers = status.num_workers
        check(self.parameter_count * 4 == status.parameter_bytes and
              self.state_count * 4 == status.state_bytes,
              "Status: parameter_count %d / state_count %d do not match parameter_bytes %d / "
              "state_bytes %d" % (self.parameter_count, self.state_count,
                                  status.parameter_bytes, status.state_bytes))
        # The payload is the slices in the order listed, parameters first: the offsets of
        # the moving-variance slices in the state payload (batch statistics there must not
        # be negative).
        self.variance_ranges = []
        self.parameter_slices = []  # (offset in the payload, tensor, first element, size)
        offset = 0
        for s in status.slices:
            size = s.end - s.begin
            if offset < self.parameter_count:
                self.parameter_slices.append((offset, s.tensor, s.begin, size))
            if offset >= self.parameter_count and s.tensor.endswith("moving_variance"):
                self.variance_ranges.append((offset - self.parameter_count,
                                             offset - self.parameter_count + size))
            offset += size
        check(offset == self.parameter_count + self.state_count,
              "Status: the slices hold %d floats, parameter_count + state_count is %d" %
              (offset, self.parameter_count + self.state_count))
        check(self.state_count == 0 or self.variance_ranges,
              "Status: no moving_variance slice among the state slices")

    def locate(self, index):
        """"tensor[element]" of float `index` of the parameter payload."""
        for offset, tensor, begin, size in self.parameter_slices:
            if offset <= index < offset + size:
                return "%s[%d]" % (tensor, begin + index - offset)
        raise Failure("float %d is not in the parameter payload" % index)

    def valid_batch_stats(self, rng, scale=1.0):
        """Finite batch statistics with non-negative variances."""
        import numpy
        stats = rng.uniform(-scale, scale, self.state_count).astype("<f4")
        for begin, end in self.variance_ranges:
            stats[begin:end] = numpy.abs(stats[begin:end])
        return stats.tobytes()


class PsClient:
    """One channel to one server; calls return an Outcome instead of raising."""

    def __init__(self, stubs, address, deadline_secs=20.0, credentials=None, server_name=None,
                 token=None):
        """`credentials`: grpc channel credentials (TLS), with `server_name` the name the
        server's certificate must carry (e.g. "ps-0"); `token`: a bearer token sent with
        every call."""
        import grpc
        self.grpc = grpc
        self.pb = stubs.pb
        self.address = address
        self.deadline_secs = deadline_secs
        self.metadata = (("authorization", "Bearer " + token),) if token else None
        if credentials is None:
            self.channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
        else:
            options = list(CLIENT_OPTIONS)
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self.channel = grpc.secure_channel(address, credentials, options=options)
        self.stub = stubs.grpc_pb.ParameterServerStub(self.channel)
        self._raw = {rpc: self.channel.unary_unary(SERVICE + rpc) for rpc in RPCS}

    def close(self):
        self.channel.close()

    def call(self, rpc, request, timeout=None):
        """`rpc` ("Push", ...) with a request message."""
        return self._invoke(getattr(self.stub, rpc), request, timeout)

    def raw(self, rpc, data, timeout=None):
        """`rpc` with `data` as the request's bytes, whatever they are; the response is
        left as bytes."""
        return self._invoke(self._raw[rpc], data, timeout)

    def _invoke(self, method, request, timeout):
        try:
            response = method(request, timeout=timeout or self.deadline_secs,
                              metadata=self.metadata)
            return Outcome(self.grpc.StatusCode.OK, "", response)
        except self.grpc.RpcError as e:
            return Outcome(e.code(), e.details() or "", None)

    def status(self):
        out = self.call("GetStatus", self.pb.StatusRequest())
        check(out.code == self.grpc.StatusCode.OK,
              "GetStatus failed: %s %s" % (out.code, out.details))
        return out.response

    def pull(self, info, include_state=True, worker_id=-1, parameters_dtype=0):
        out = self.call("Pull", self.pb.PullRequest(
            plan_fingerprint=info.fingerprint, shard_index=info.shard_index,
            include_state=include_state, worker_id=worker_id, model=info.model,
            num_shards=info.num_shards, parameters_dtype=parameters_dtype))
        check(out.code == self.grpc.StatusCode.OK,
              "Pull (worker %d) failed: %s %s" % (worker_id, out.code, out.details))
        return out.response

    def push_request(self, info, pulled, worker_id=0, gradients=None, batch_stats=b"",
                     example_count=64, request_id=None, **fields):
        """A valid push (unless `fields` say otherwise) of gradients computed from the
        pull `pulled`: small finite gradients by default."""
        if gradients is None:
            gradients = float_bytes([1e-3]) * info.parameter_count
        values = dict(plan_fingerprint=info.fingerprint, shard_index=info.shard_index,
                      worker_id=worker_id,
                      request_id=request_id if request_id is not None else
                      int.from_bytes(os.urandom(8), "little"),
                      computed_from_version=pulled.version, example_count=example_count,
                      gradients=gradients, batch_stats=batch_stats,
                      worker_images_per_sec=100.0, worker_steps=1, model=info.model,
                      num_shards=info.num_shards, server_incarnation=pulled.server_incarnation)
        values.update(fields)
        return self.pb.PushRequest(**values)


# ---- the server process


def rss_bytes(pid):
    """Resident memory of process `pid` (VmRSS), 0 when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class PsProcess:
    """One mobilenet-ps on loopback with the small model. Its output goes to
    <run_dir>/<name>.log (.run2.log, ... for restarts)."""

    def __init__(self, bin_dir, run_dir, checkpoint_dir, name="ps", ps_hosts=None,
                 task_index=0, num_workers=NUM_WORKERS, extra=()):
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.name = name
        self.checkpoint_dir = checkpoint_dir
        if ps_hosts is None:
            ps_hosts = "127.0.0.1:%d" % free_ports(1)[0]
        self.ps_hosts = ps_hosts
        self.task_index = task_index
        self.address = ps_hosts.split(",")[task_index]
        # Workers listen on nothing: only the number of entries counts.
        self.worker_hosts = ",".join("127.0.0.1:%d" % (i + 1) for i in range(num_workers))
        self.extra = list(extra)
        self.proc = None
        self.log_path = None
        self.runs = 0

    def args(self, extra=()):
        return ([os.path.join(self.bin_dir, "mobilenet-ps"), "--ps_hosts=" + self.ps_hosts,
                 "--worker_hosts=" + self.worker_hosts, "--job_name=ps",
                 "--task_index=%d" % self.task_index,
                 "--checkpoint_dir=" + self.checkpoint_dir, "--log_every_secs=0"] +
                MODEL_FLAGS + self.extra + list(extra))

    def start(self, extra=()):
        """Starts (or restarts) the server with the same flags plus `extra`."""
        check(self.proc is None or self.proc.poll() is not None, "%s already runs" % self.name)
        self.runs += 1
        self.log_path = os.path.join(self.run_dir, "%s%s.log" % (
            self.name, "" if self.runs == 1 else ".run%d" % self.runs))
        env = dict(os.environ)
        env.pop("MOBILENET_CLUSTER", None)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.args(extra), stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_serving(self, client, timeout=30):
        """Waits until GetStatus answers; returns the status. Failure if the process
        exits or does not answer in time. `client` must not have called the server yet:
        this waits for the port to accept connections first, because a gRPC channel
        refused once retries only after seconds (seen: 5 s with gRPC Python 1.51, whatever
        the reconnect backoff options)."""
        deadline = time.time() + timeout
        host, port = self.address.rsplit(":", 1)
        while time.time() < deadline:
            code = self.proc.poll()
            check(code is None, "%s exited with %s before serving:\n%s" %
                  (self.name, code, self.tail()))
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        while time.time() < deadline:
            code = self.proc.poll()
            check(code is None, "%s exited with %s before serving:\n%s" %
                  (self.name, code, self.tail()))
            out = client.call("GetStatus", client.pb.StatusRequest(), timeout=2)
            if out.code == client.grpc.StatusCode.OK:
                return out.response
            time.sleep(0.1)
        raise Failure("%s did not answer GetStatus within %ds:\n%s" %
                      (self.name, timeout, self.tail()))

    def wait_exit(self, timeout):
        """The exit code, Failure when still running after `timeout` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("%s still running %ds after it should have exited:\n%s" %
                          (self.name, timeout, self.tail()))

    def terminate(self, timeout=60):
        """SIGTERM; returns the exit code."""
        check(self.running(), "%s is not running (exit %s):\n%s" %
              (self.name, self.proc.poll() if self.proc else None, self.tail()))
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        """SIGKILL if still running (for cleanup)."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def log(self):
        if self.log_path is None or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def tail(self, lines=25):
        text = self.log().splitlines()[-lines:]
        return "\n".join("    " + line[-400:] for line in text) or "    (empty log)"


def dump_logs(run_dir, lines=25):
    """Prints the end of every log in `run_dir` (after a failure)."""
    if not os.path.isdir(run_dir):
        return
    for name in sorted(os.listdir(run_dir)):
        if name.endswith(".log"):
            with open(os.path.join(run_dir, name), errors="replace") as f:
                text = f.read().splitlines()
            print("---- %s (last %d lines)" % (name, lines))
            for line in text[-lines:]:
                print("    " + line[-400:])
