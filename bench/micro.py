#!/usr/bin/env python3
"""Micro-benchmarks of the per-request pure-Python work (µs per operation).

Not a target (targets live in the side-by-side harness, bench/run.sh); a quick
way to see whether a change to the parser or the header policy made the hot
path slower.  Run: .venv/bin/python bench/micro.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cocalcproxy.http1 import END, RequestReader, ResponseReader  # noqa: E402
from cocalcproxy.routing.headers import Peer, request_head_bytes, response_head_bytes  # noqa: E402
from cocalcproxy.routing.project import ProjectRouting, route_project  # noqa: E402

WRK_REQUEST = b"GET /proxy/18080/1k.bin HTTP/1.1\r\nHost: 127.0.0.1:18100\r\n\r\n"
BROWSER_REQUEST = (
    b"GET /6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f/server/8000/lab/tree HTTP/1.1\r\nHost: cocalc.example.org\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: a=b; remember_me=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
    b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: none\r\n"
    b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n"
)
NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 23:00:00 GMT\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 1024\r\nLast-Modified: Sun, 22 Nov 2026 22:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"abc-400\"\r\n"
    b"Accept-Ranges: bytes\r\n\r\n" + b"x" * 1024
)


def parse_request(data: bytes):
    r = RequestReader()
    r.receive(data)
    head = r.next_event()
    assert r.next_event() is END
    return head


def parse_response():
    r = ResponseReader()
    r.expect(False, False)
    r.receive(NGINX_RESPONSE)
    head = r.next_event()
    r.next_event()
    assert r.next_event() is END
    return head


def main() -> None:
    routing = ProjectRouting(base=b"/")
    peer = Peer(b"127.0.0.1", True, b"http", b"18100")
    req = parse_request(WRK_REQUEST)
    browser = parse_request(BROWSER_REQUEST)
    resp = parse_response()
    cases = {
        "parse wrk request": lambda: parse_request(WRK_REQUEST),
        "parse browser request": lambda: parse_request(BROWSER_REQUEST),
        "parse nginx response (1 KiB body)": parse_response,
        "route /proxy/P/": lambda: route_project(routing, req.target),
        "forwarded request head (wrk)": lambda: request_head_bytes(req, b"/1k.bin", peer, b"/proxy/18080"),
        "forwarded request head (browser)": lambda: request_head_bytes(browser, b"/lab/tree", peer, b"/x"),
        "relayed response head": lambda: response_head_bytes(
            resp, keep_alive=True, client_is_11=True, reframe=False, context_path=None
        ),
    }
    for name, fn in cases.items():
        n = 20000
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6
        print(f"{name:40s} {best:7.2f} µs")


if __name__ == "__main__":
    main()
