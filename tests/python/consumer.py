#!/usr/bin/env python3
"""A third-party gRPC consumer of the sensor agent, written with PyPI's grpcio (sensor-tests).

Why: the agent's API must work for clients that are not the sensor's own CLI. This one does what
an integrator would do: generate the Python stubs from the repository's proto with
`grpc_tools.protoc` (into a temp dir, at start), connect to the agent's unix socket, call
`ListProfiles`, then `StreamAnomalies` with a filter and `since_seq`, and print what it gets.

Usage:
  consumer.py --socket PATH --proto-root DIR --gen-dir DIR
              [--namespace NS]... [--rule ID]... [--since SEQ] [--list-profiles]
              [--pause-file PATH]

Output on stdout, one JSON object per line (flushed at once):
  {"kind": "profiles", "profiles": [{"namespace", "workload", "container", "status", ...}]}
  {"kind": "anomaly", "seq": N, "rule": "...", "namespace": "...", "pod": "...",
   "container": "...", "workload": "...", "severity": "...", "count": N, "repeatOf": N,
   "process": {...} | null, "json": <the logged record, parsed>}
  {"kind": "gap", "missed": N, "reason": "GAP_REASON_...", "afterSeq": N}
  {"kind": "live", "lastSeq": N}
  {"kind": "paused"} / {"kind": "resumed"}       (see --pause-file)
  {"kind": "end", "code": "...", "details": "..."}  (the stream ended with a status)

--pause-file: after each message, while PATH exists, stop reading the stream (a slow consumer:
the agent's per-subscriber queue fills and it must report a gap when reading resumes). HTTP/2
BDP probing is off so that grpcio's own buffering stays small (64 KiB flow-control window).

The unix-socket authority: grpcio >= 1.57 sends the percent-encoded socket path as `:authority`,
which the agent's HTTP/2 layer refuses; `grpc.default_authority=localhost` fixes it (see
proto/sensor/v1/sensor.proto).
"""
import argparse
import json
import os
import sys
import time


def out(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def generate(proto_root, gen_dir):
    """Stubs for sensor/v1/sensor.proto into gen_dir; returns (sensor_pb2, sensor_pb2_grpc)."""
    import grpc_tools
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    os.makedirs(gen_dir, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            "-I" + proto_root,
            "-I" + include,
            "--python_out=" + gen_dir,
            "--grpc_python_out=" + gen_dir,
            os.path.join(proto_root, "sensor", "v1", "sensor.proto"),
        ]
    )
    if rc != 0:
        raise SystemExit("grpc_tools.protoc failed (exit %d) on %s" % (rc, proto_root))
    sys.path.insert(0, gen_dir)
    from sensor.v1 import sensor_pb2, sensor_pb2_grpc  # noqa: E402  (generated just now)

    return sensor_pb2, sensor_pb2_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--gen-dir", required=True)
    ap.add_argument("--namespace", action="append", default=[])
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--since", type=int)
    ap.add_argument("--list-profiles", action="store_true")
    ap.add_argument("--pause-file")
    args = ap.parse_args()

    import grpc
    from google.protobuf import json_format

    pb, pb_grpc = generate(args.proto_root, args.gen_dir)
    channel = grpc.insecure_channel(
        "unix:" + args.socket,
        options=[
            ("grpc.default_authority", "localhost"),
            ("grpc.http2.bdp_probe", 0),
        ],
    )
    stub = pb_grpc.SensorStub(channel)

    if args.list_profiles:
        resp = stub.ListProfiles(pb.ListProfilesRequest(), timeout=20)
        profiles = []
        for p in resp.profiles:
            # camelCase keys, enums by name (e.g. "status": "PROFILE_STATUS_READY").
            profiles.append(json_format.MessageToDict(p))
        out({"kind": "profiles", "nodeName": resp.node_name, "profiles": profiles})

    request = pb.StreamAnomaliesRequest(
        filter=pb.AnomalyFilter(namespace=args.namespace, rule_ids=args.rule),
    )
    if args.since is not None:
        request.since_seq = args.since
    stream = stub.StreamAnomalies(request)
    try:
        for msg in stream:
            which = msg.WhichOneof("payload")
            if which == "anomaly":
                a = msg.anomaly
                out(
                    {
                        "kind": "anomaly",
                        "seq": a.seq,
                        "rule": a.rule_id,
                        "namespace": a.namespace,
                        "pod": a.pod,
                        "container": a.container,
                        "workload": a.workload,
                        "severity": pb.Severity.Name(a.severity),
                        "count": a.count,
                        "repeatOf": a.repeat_of,
                        "process": json_format.MessageToDict(a.process) if a.HasField("process") else None,
                        "json": json.loads(a.json) if a.json else None,
                    }
                )
            elif which == "gap":
                out(
                    {
                        "kind": "gap",
                        "missed": msg.gap.missed,
                        "reason": pb.GapReason.Name(msg.gap.reason),
                        "afterSeq": msg.gap.after_seq,
                    }
                )
            elif which == "live":
                out({"kind": "live", "lastSeq": msg.live.last_seq})
            else:
                out({"kind": "unknown", "message": str(msg)})
            if args.pause_file and os.path.exists(args.pause_file):
                out({"kind": "paused"})
                while os.path.exists(args.pause_file):
                    time.sleep(0.02)
                out({"kind": "resumed"})
    except grpc.RpcError as e:
        out({"kind": "end", "code": str(e.code()), "details": e.details()})
        return 1
    out({"kind": "end", "code": "OK", "details": "the stream ended"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
