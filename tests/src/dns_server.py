#!/usr/bin/env python3
"""Tiny authoritative DNS server for the sensor test bed (python3 stdlib only).

Why: the sensor's DNS capture must be tested against real answers without sending any traffic
off the machine. This server runs inside a test network namespace and answers the names the test
configured, over UDP and TCP.

Usage: dns_server.py BIND_IP PORT ZONE_JSON
ZONE_JSON: {"records": [{"name": "a.test", "type": "A"|"AAAA"|"CNAME", "value": "...", "ttl": 60}]}

Behaviour: a question for a name with a CNAME is answered with the CNAME chain followed by the
records of the asked type at the end of the chain. Unknown names get NXDOMAIN. Names are written
uncompressed. Prints "ready" on stdout once both sockets are bound; logs queries on stderr.
"""
import json
import socket
import struct
import sys
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}


def norm(name):
    return name.rstrip(".").lower()


def encode_name(name):
    out = b""
    for label in norm(name).split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def encode_rr(owner, rec):
    rtype = TYPES[rec["type"]]
    if rtype == 1:
        rdata = socket.inet_pton(socket.AF_INET, rec["value"])
    elif rtype == 28:
        rdata = socket.inet_pton(socket.AF_INET6, rec["value"])
    elif rtype == 5:
        rdata = encode_name(rec["value"])
    else:
        rdata = rec["value"].encode()
    return encode_name(owner) + struct.pack("!HHIH", rtype, 1, int(rec.get("ttl", 60)), len(rdata)) + rdata


def parse_question(msg):
    pos = 12
    labels = []
    while True:
        length = msg[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in question")
        labels.append(msg[pos:pos + length].decode("ascii", "replace"))
        pos += length
    qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return ".".join(labels), qtype, qclass, pos + 4


def respond(msg, zone):
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if flags & 0x8000:
        return None  # a response, not a query
    opcode_rd = flags & 0x7900  # opcode + RD copied from the query
    try:
        if qdcount != 1:
            raise ValueError("qdcount %d" % qdcount)
        name, qtype, _qclass, end = parse_question(msg)
    except (ValueError, IndexError, struct.error) as e:
        print("formerr: %s" % e, file=sys.stderr, flush=True)
        return struct.pack("!6H", qid, 0x8000 | opcode_rd | 0x0080 | 1, 0, 0, 0, 0)
    answers = []
    rcode = 0
    current = norm(name)
    if current not in zone:
        rcode = 3
    seen = set()
    while current in zone and current not in seen:
        seen.add(current)
        records = zone[current]
        cnames = [r for r in records if r["type"] == "CNAME"]
        if cnames and qtype != TYPES["CNAME"]:
            answers.append(encode_rr(current, cnames[0]))
            current = norm(cnames[0]["value"])
            continue
        answers += [encode_rr(current, r) for r in records if qtype in (TYPES[r["type"]], 255)]
        break
    print("query %s type %d -> rcode %d, %d answers" % (name, qtype, rcode, len(answers)), file=sys.stderr, flush=True)
    header = struct.pack("!6H", qid, 0x8000 | opcode_rd | 0x0400 | 0x0080 | rcode, 1, len(answers), 0, 0)
    return header + msg[12:end] + b"".join(answers)


def serve_udp(sock, zone):
    while True:
        msg, peer = sock.recvfrom(4096)
        reply = respond(msg, zone)
        if reply:
            sock.sendto(reply, peer)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def handle_tcp(conn, zone):
    with conn:
        while True:
            head = recv_exact(conn, 2)
            if head is None:
                return
            msg = recv_exact(conn, struct.unpack("!H", head)[0])
            if msg is None:
                return
            reply = respond(msg, zone)
            if reply:
                conn.sendall(struct.pack("!H", len(reply)) + reply)


def serve_tcp(sock, zone):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle_tcp, args=(conn, zone), daemon=True).start()


def main():
    bind_ip, port, zone_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(zone_file) as f:
        config = json.load(f)
    zone = {}
    for rec in config["records"]:
        zone.setdefault(norm(rec["name"]), []).append(rec)
    family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((bind_ip, port))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((bind_ip, port))
    tcp.listen(16)
    threading.Thread(target=serve_tcp, args=(tcp, zone), daemon=True).start()
    print("ready", flush=True)
    serve_udp(udp, zone)


if __name__ == "__main__":
    main()
