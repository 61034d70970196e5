#!/usr/bin/env python3
"""Hold N CONNECT tunnels open through a proxy, to measure what an idle tunnel costs it.

usage: tunnels.py PROXY_PORT ORIGIN_PORT N HOLD_SECONDS [TIMEOUT_SECONDS]

Opens N connections to the proxy on 127.0.0.1 and sends a CONNECT to the origin on each,
then reads every answer, then sends one small GET down every tunnel that was accepted, then
reads every response (so each tunnel has carried bytes both ways and is known to work). Each
phase goes over all tunnels before the next starts, so the proxy sees many tunnels busy at
once, as it would with many clients. TIMEOUT_SECONDS (default 60) bounds every single socket
operation. Prints one line

    tunnels_ok=K of N in S s

and then holds every tunnel open, idle, for HOLD_SECONDS (the caller samples the proxy's
memory meanwhile and may end this process early with SIGTERM).
"""
import resource
import socket
import sys
import time

ORIGIN_PATH = b"/1k"  # run.sh puts a 1 KiB object there


def read_head(s):
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    return head


def read_response(s):
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
        _, sep, body = got.partition(b"\r\n\r\n")
        if sep and len(body) >= 1024:
            break
    return got


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    pp, op, n, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) == 6 else 60.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 16 > hard:
        print("tunnels_ok=0 of %d: the file descriptor limit (%d) is too small" % (n, hard), flush=True)
        sys.exit(1)
    t0 = time.monotonic()
    connect = b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (op, op)
    socks = []
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", pp), timeout=timeout)
            s.sendall(connect)
            socks.append(s)
        except OSError as e:
            print("connect %d failed: %s" % (i, e), file=sys.stderr)
            break
    up = []
    for s in socks:
        try:
            if b" 200" in read_head(s).split(b"\r\n", 1)[0]:
                up.append(s)
        except OSError:
            pass
    get = b"GET " + ORIGIN_PATH + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % op
    sent = []
    for s in up:
        try:
            s.sendall(get)
            sent.append(s)
        except OSError:
            pass
    ok = 0
    for s in sent:
        try:
            if read_response(s).startswith(b"HTTP/1.1 200"):
                ok += 1
        except OSError:
            pass
    print("tunnels_ok=%d of %d in %.1fs" % (ok, n, time.monotonic() - t0), flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main()
