#!/usr/bin/env python3
"""TCP server and client for the test bed's network peers (python3 stdlib only).

Why: a peer in its own network namespace that containers connect to (egress) or that connects to
a container (ingress), with byte counts the test can check against the sensor's flow records.

  peer_tools.py serve BIND_IP PORT
      Accepts connections (threaded). Each connection: read until EOF, reply "received N\\n",
      close. Prints "ready" once listening.
  peer_tools.py send IP PORT NBYTES TIMEOUT_S
      Connects (retrying while refused, until TIMEOUT_S), sends NBYTES bytes of 'x', half-closes,
      prints whatever the server answered, exits 0. Exits 1 if it never connected.
"""
import socket
import sys
import threading
import time


def handle(conn):
    with conn:
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        try:
            conn.sendall(b"received %d\n" % total)
        except OSError:
            pass


def serve(bind_ip, port):
    family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind_ip, port))
    sock.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def send(ip, port, nbytes, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((ip, port), timeout=2)
            break
        except OSError as e:
            if time.monotonic() >= deadline:
                print("connect failed: %s" % e, file=sys.stderr)
                sys.exit(1)
            time.sleep(0.02)
    sock.settimeout(timeout)
    sock.sendall(b"x" * nbytes)
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sock.close()
    sys.stdout.write(reply.decode("utf-8", "replace"))


def main():
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit("unknown mode %s" % sys.argv[1])


if __name__ == "__main__":
    main()
