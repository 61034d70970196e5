#!/usr/bin/env python3
"""fetch.py - download a /rand/N?seed=S URL of tests/clients/origin.py with urllib, through
whatever proxy http_proxy / https_proxy name, and check it against the stream the origin
sends (regenerated here from the seed, as origin.py makes it).

    fetch.py URL N SEED [CAFILE]

Prints "ok N SHA256" and exits 0 when the status is 200, exactly N bytes arrived and their
sha256 is the origin's; otherwise prints what differed and exits 1. CAFILE: the origin's
self-signed certificate, for https:// URLs (verified, not ignored)."""
import hashlib
import os
import ssl
import sys
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (read-only in distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from origin import rand_stream  # noqa: E402


def main():
    url, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = ssl.create_default_context(cafile=sys.argv[4]) if len(sys.argv) > 4 else None
    want = hashlib.sha256()
    for block in rand_stream(n, seed):
        want.update(block)
    # only the environment's proxies: ProxyHandler() reads http_proxy / https_proxy
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(),
                                         urllib.request.HTTPSHandler(context=ctx))
    got = hashlib.sha256()
    size = 0
    with opener.open(url, timeout=60) as resp:
        status, via = resp.status, resp.headers.get("Via")
        while True:
            block = resp.read(1 << 20)
            if not block:
                break
            got.update(block)
            size += len(block)
    if status != 200 or size != n or got.hexdigest() != want.hexdigest():
        print("status %d, %d of %d bytes, sha256 %s, origin sent %s" %
              (status, size, n, got.hexdigest(), want.hexdigest()))
        return 1
    print("ok %d %s via=%s" % (size, got.hexdigest(), via or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
