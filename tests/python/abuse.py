#!/usr/bin/env python3
"""API abuse against the sensor agent, done the way a real grpcio client does it (sensor-tests).

Why: the agent's limits (request size, open streams) must hold for clients that are not the
sensor's own CLI, over real HTTP/2 connections on its unix socket. Stubs come from the
repository's proto through consumer.py's `generate` (written beside this file by the test).

Usage:
  abuse.py --socket PATH --proto-root DIR --gen-dir DIR oversized --bytes N
  abuse.py --socket PATH --proto-root DIR --gen-dir DIR streams --count N --hold S
           [--per-channel K] [--namespace NS]

Output on stdout, one JSON object per line:
  oversized: GetProfile whose namespace is N bytes, then ListProfiles on the same channel:
    {"kind": "oversized", "bytes": N, "code": "...", "details": "..."}
    {"kind": "after", "code": "...", "profiles": K, "ms": T}
  streams: N concurrent StreamEvents over N/K connections (K streams each: HTTP/2 caps streams
  per connection, the agent caps them over all connections), held S seconds; half-way, a
  ListProfiles call is timed; then every stream is cancelled and one more is opened:
    {"kind": "streams", "count": N, "accepted": A, "refused": R, "codes": {...},
     "refusal": "...", "events": E, "gaps": G, "list_ms": T, "list_code": "..."}
    {"kind": "reopen", "code": "..."}   (a stream opened after the others closed)
  count: one StreamEvents stream of exec events of namespace NS, counting those with an
  argument starting with MARKER and the events its gaps say it missed, until STOP exists:
    {"kind": "ready"}
    {"kind": "count", "events": E, "matching": M, "gaps": G, "code": "..."}
"""
import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consumer import generate  # noqa: E402  (written beside this script by the test)


def out(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


OPTIONS = [
    ("grpc.default_authority", "localhost"),
    # Our request is the test: never refuse it on the client side.
    ("grpc.max_send_message_length", -1),
]


def oversized(args, pb2, pb2_grpc):
    import grpc

    channel = grpc.insecure_channel("unix:" + args.socket, options=OPTIONS)
    stub = pb2_grpc.SensorStub(channel)
    ref = pb2.ProfileRef(namespace="n" * args.bytes, workload="w", container="c")
    try:
        stub.GetProfile(ref, timeout=30)
        out({"kind": "oversized", "bytes": args.bytes, "code": "OK", "details": ""})
    except grpc.RpcError as e:
        out({"kind": "oversized", "bytes": args.bytes, "code": str(e.code()), "details": e.details()})
    started = time.monotonic()
    try:
        resp = stub.ListProfiles(pb2.ListProfilesRequest(), timeout=30)
        code, n = "OK", len(resp.profiles)
    except grpc.RpcError as e:
        code, n = str(e.code()), -1
    out({"kind": "after", "code": code, "profiles": n, "ms": (time.monotonic() - started) * 1e3})


async def streams(args, pb2, pb2_grpc):
    import grpc

    per = max(1, args.per_channel)
    channels = [
        grpc.aio.insecure_channel("unix:" + args.socket, options=OPTIONS)
        for _ in range((args.count + per - 1) // per)
    ]
    stubs = [pb2_grpc.SensorStub(c) for c in channels]
    request = pb2.StreamEventsRequest()
    if args.namespace:
        request.filter.namespace.append(args.namespace)
    results = {"events": 0, "gaps": 0}
    outcome = [None] * args.count  # None while open, else the status code name

    async def one(i):
        call = stubs[i // per].StreamEvents(request)
        try:
            async for msg in call:
                if msg.WhichOneof("payload") == "gap":
                    results["gaps"] += msg.gap.missed
                else:
                    results["events"] += 1
            outcome[i] = "OK"
        except grpc.aio.AioRpcError as e:
            outcome[i] = str(e.code())
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                results.setdefault("refusal", e.details())
        except asyncio.CancelledError:
            call.cancel()
            raise

    tasks = [asyncio.ensure_future(one(i)) for i in range(args.count)]
    await asyncio.sleep(args.hold / 2)
    started = time.monotonic()
    try:
        resp = await stubs[0].ListProfiles(pb2.ListProfilesRequest(), timeout=30)
        list_code = "OK"
    except grpc.aio.AioRpcError as e:
        list_code = str(e.code())
    list_ms = (time.monotonic() - started) * 1e3
    await asyncio.sleep(args.hold / 2)
    codes = {}
    for o in outcome:
        key = o if o is not None else "open"
        codes[key] = codes.get(key, 0) + 1
    out(
        {
            "kind": "streams",
            "count": args.count,
            "accepted": codes.get("open", 0),
            "refused": codes.get("StatusCode.RESOURCE_EXHAUSTED", 0),
            "codes": codes,
            "refusal": results.get("refusal", ""),
            "events": results["events"],
            "gaps": results["gaps"],
            "list_ms": list_ms,
            "list_code": list_code,
        }
    )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in channels:
        await c.close()
    # The slots are free again once the clients are gone (the agent notices the resets).
    await asyncio.sleep(1.0)
    channel = grpc.aio.insecure_channel("unix:" + args.socket, options=OPTIONS)
    call = pb2_grpc.SensorStub(channel).StreamEvents(request)
    code = "open"
    try:
        await asyncio.wait_for(call.initial_metadata(), timeout=10)
        await asyncio.sleep(0.5)
        if call.done():
            code = str(await call.code())
    except asyncio.TimeoutError:
        code = "timeout"
    call.cancel()
    await channel.close()
    out({"kind": "reopen", "code": code})


def count(args, pb2, pb2_grpc):
    import grpc
    import threading

    channel = grpc.insecure_channel("unix:" + args.socket, options=OPTIONS)
    request = pb2.StreamEventsRequest()
    request.filter.namespace.append(args.namespace)
    request.filter.kinds.append(pb2.EVENT_KIND_EXEC)
    call = pb2_grpc.SensorStub(channel).StreamEvents(request)
    call.initial_metadata()
    out({"kind": "ready"})
    totals = {"events": 0, "matching": 0, "gaps": 0, "code": "open"}

    def read():
        try:
            for msg in call:
                if msg.WhichOneof("payload") == "gap":
                    totals["gaps"] += msg.gap.missed
                    continue
                totals["events"] += 1
                if any(a.startswith(args.marker) for a in msg.event.exec.args):
                    totals["matching"] += 1
            totals["code"] = "OK"
        except grpc.RpcError as e:
            totals["code"] = str(e.code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not os.path.exists(args.stop_file):
        time.sleep(0.2)
    call.cancel()
    reader.join(timeout=10)
    out(dict(totals, kind="count"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--gen-dir", required=True)
    sub = ap.add_subparsers(dest="mode", required=True)
    o = sub.add_parser("oversized")
    o.add_argument("--bytes", type=int, required=True)
    s = sub.add_parser("streams")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--hold", type=float, default=6.0)
    s.add_argument("--per-channel", type=int, default=20)
    s.add_argument("--namespace")
    c = sub.add_parser("count")
    c.add_argument("--namespace", required=True)
    c.add_argument("--marker", required=True)
    c.add_argument("--stop-file", required=True)
    args = ap.parse_args()
    pb2, pb2_grpc = generate(args.proto_root, args.gen_dir)
    if args.mode == "oversized":
        oversized(args, pb2, pb2_grpc)
    elif args.mode == "count":
        count(args, pb2, pb2_grpc)
    else:
        asyncio.run(streams(args, pb2, pb2_grpc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
