#!/usr/bin/env python3
"""requests_check.py - python3-requests through ferry, for ferry's real-clients suite.

    requests_check.py PROXY HTTPBASE HTTPSBASE CAFILE SIZE

PROXY is host:port; the bases are tests/clients/origin.py's plain and TLS ports
(http://NAME:PORT, https://NAME:PORT). Every request names the proxy in proxies=. Checks,
each printing one "ok ..." line, and raising (exit 1) on the first that fails:

  get        GET /len/N over http and https: the body, and ferry's Via on the http one
  stream     stream=True, iter_content of /rand/SIZE: sha256 against the stream origin.py sent
  chunked    POST to /echo from a generator (requests sends Transfer-Encoding: chunked), http
             and https: the echo is what the generator yielded
  large      POST of SIZE bytes with Content-Length, http and https: echoed whole
  session    a Session making 10 requests over http and 5 over https: one connection to the
             proxy each (requests reuses it only if ferry kept it alive)

Exit 3 (before anything else) when the requests module is missing.
"""
import hashlib
import random
import sys

try:
    import requests
    import urllib3
except ImportError:
    sys.exit(3)

BLOCK = 1 << 20
opened = []  # one entry per connection urllib3 opened (to the proxy: every one goes there)
_new_conn = urllib3.connection.HTTPConnection._new_conn


def counting_new_conn(self):
    opened.append((self.host, self.port))
    return _new_conn(self)


urllib3.connection.HTTPConnection._new_conn = counting_new_conn


def pattern(n):
    pat = bytes(ord("a") + i % 26 for i in range(26 * 4000))
    return (pat * (n // len(pat) + 1))[:n]


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)


def main():
    proxy, http_base, https_base, ca, size = sys.argv[1:6]
    size = int(size)
    px = {"http": "http://" + proxy, "https": "http://" + proxy}

    for base in (http_base, https_base):
        r = requests.get(base + "/len/300000", proxies=px, verify=ca, timeout=60)
        check(r.status_code == 200 and r.content == pattern(300000),
              "GET %s: %d, %d bytes" % (base, r.status_code, len(r.content)))
        if base.startswith("http:"):
            check(r.headers.get("Via", "").startswith("1.1 "), "no Via: %r" % r.headers)
    print("ok get", flush=True)

    r = requests.get(http_base + "/rand/%d?seed=5" % size, proxies=px, stream=True, timeout=60)
    got, n = hashlib.sha256(), 0
    for part in r.iter_content(65536):
        got.update(part)
        n += len(part)
    want, rnd, left = hashlib.sha256(), random.Random(5), size
    while left > 0:
        k = min(left, BLOCK)
        want.update(rnd.randbytes(k))
        left -= k
    check(r.status_code == 200 and n == size and got.digest() == want.digest(),
          "stream: %d, %d of %d bytes" % (r.status_code, n, size))
    print("ok stream", n, flush=True)

    for base in (http_base, https_base):
        parts = []

        def gen():
            for i in range(64):
                part = bytes([i]) * (1000 + 997 * i)
                parts.append(part)
                yield part

        r = requests.post(base + "/echo", data=gen(), proxies=px, verify=ca, timeout=60)
        sent = b"".join(parts)
        check(r.status_code == 200 and r.content == sent,
              "chunked POST %s: %d, %d of %d bytes" % (base, r.status_code, len(r.content), len(sent)))
    print("ok chunked", len(sent), flush=True)

    body = random.Random(9).randbytes(size)
    for base in (http_base, https_base):
        r = requests.post(base + "/echo", data=body, proxies=px, verify=ca, timeout=60)
        check(r.status_code == 200 and r.content == body,
              "POST %s: %d, %d of %d bytes" % (base, r.status_code, len(r.content), size))
    print("ok large", size, flush=True)

    for base, times in ((http_base, 10), (https_base, 5)):
        with requests.Session() as s:
            s.proxies = px
            before = len(opened)
            for i in range(times):
                r = s.get(base + "/len/%d" % (1000 + i), verify=ca, timeout=60)
                check(r.status_code == 200 and r.content == pattern(1000 + i),
                      "session GET %d on %s" % (i, base))
            check(len(opened) - before == 1,
                  "session on %s opened %d connections for %d requests"
                  % (base, len(opened) - before, times))
    print("ok session", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
