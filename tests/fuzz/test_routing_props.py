"""Routing invariants (STYLE §2.7, SPEC §3–§4) over generated paths.

- A request is only ever routed to the host/port its prefix names, and a decoding
  reader of the same path would see the same prefix (no ``%2f``/``%2e`` tricks).
- Dot-segments anywhere (raw or encoded, ``..%2f`` too) are 400; ``%2f`` in a
  routing-prefix segment is 400; after the prefix it is forwarded verbatim.
- Prefix stripping and the context path agree: context + forwarded path = path.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from hypothesis import event, given
from hypothesis import strategies as st

from cocalcproxy.routing.allowlist import HostAllowlist
from cocalcproxy.routing.headers import rewrite_location
from cocalcproxy.routing.paths import split_target
from cocalcproxy.routing.project import ProjectRouting, route_project
from cocalcproxy.routing.types import Forward, Named, Redirect, Reject

from .strategies import FUZZ

PID = b"6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
BASES = [b"/", b"/" + PID + b"/", b"/foo/" + PID + b"/"]
ALLOW = HostAllowlist(["localhost", "127.0.0.1", "*.internal", "::1"])
SERVERS = ("lab", "code")

#: Segment material: ordinary names, numbers, dots raw and encoded, encoded slashes.
_PIECES = [b"a", b"lab", b"code", b"port", b"server", b"proxy", b"absolute", b"8000", b"80", b"0", b"65536"]
_PIECES += [b".", b"..", b"%2e", b"%2E", b"%2f", b"%2F", b"%25", b":", b"@", b"[::1]", b"db.internal", b"localhost"]
_PIECES += [b"healthz", b"-", b"~", b"%41", b"?", b"x=1", b"&"]
segments = st.lists(st.sampled_from(_PIECES), min_size=0, max_size=3).map(b"".join)
paths = st.lists(segments, min_size=0, max_size=7).map(lambda segs: b"/".join(segs))
#: Mostly well-formed route prefixes, with a poisoned piece now and then.
_KINDS = [b"port/", b"server/", b"proxy/", b"proxy/absolute/"]
_ODD_KINDS = [b"lab/", b"code", b"healthz", b"", b"%70ort/", b"port%2f", b"Port/"]
_TARGETS = [b"8000", b"80", b"1", b"65535", b"localhost:9", b"[::1]:22", b"db.internal:5432", b"127.0.0.1:80"]
_ODD_TARGETS = [b"0", b"65536", b"evil.com:80", b"8%2f0", b"%38000", b"8000%2e", b"u@localhost:9", b"localhost"]
_ODD_TARGETS += [b"..", b"%2e%2e", b"localhost%3a9", b"[::1", b"", b"::1:80"]
_TAILS = [b"", b"x", b"a/b/", b"api/contents/a%2Fb", b"%2e%2e%2e/.hidden", b"caf\xc3\xa9"]


def _weighted(common: list[bytes], odd: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(common * 5 + odd)


structured = st.builds(
    lambda kind, seg, slash, tail: kind + seg + slash + tail,
    _weighted(_KINDS, _ODD_KINDS),
    _weighted(_TARGETS, _ODD_TARGETS),
    _weighted([b"/"], [b"", b"%2f", b"%2F"]),
    _weighted(_TAILS, [b"."]).flatmap(lambda t: st.just(t) if t != b"." else paths),
)
queries = st.sampled_from([b"", b"?", b"?a=1", b"?p=../..&q=%2f", b"?x=%2e%2e"])


def cfg(base: bytes) -> ProjectRouting:
    return ProjectRouting(base=base, target_host="localhost", allowlist=ALLOW, servers=SERVERS)


def is_dot_segment_anywhere(path: bytes) -> bool:
    """Oracle: after one percent-decoding, is any segment ``.`` or ``..``?"""
    return any(seg in (b".", b"..") for seg in unquote_to_bytes(path).split(b"/"))


@FUZZ
@given(
    st.sampled_from(BASES),
    structured,
    queries,
    st.sampled_from([True] * 4 + [False]),
)
def test_routes_only_go_where_the_prefix_says(base: bytes, rest: bytes, query: bytes, under_base: bool) -> None:
    target = (base + rest if under_base else b"/" + rest) + query
    route = route_project(cfg(base), target)
    path, _ = split_target(target)
    event(type(route).__name__)

    if is_dot_segment_anywhere(path):
        assert isinstance(route, Reject) and route.status == 400, route
        return
    if not isinstance(route, (Forward, Named)):
        return

    # What a percent-decoding router would read from the same path:
    assert path.startswith(base)
    decoded = unquote_to_bytes(path[len(base) :]).split(b"/")
    raw = path[len(base) :].split(b"/")
    if isinstance(route, Named):
        assert raw[0] == decoded[0] == route.name.encode() and len(raw) > 1
        assert route.context_path + route.rest == target
        return
    kind = raw[0]
    assert kind == decoded[0] and kind in (b"port", b"server", b"proxy")
    if kind in (b"port", b"server"):
        port_seg = raw[1]
        assert decoded[1] == port_seg and int(port_seg) == route.port and route.host == "localhost"
        assert len(raw) > 2  # a trailing slash after the port
    else:
        i = 2 if raw[1] == b"absolute" else 1
        seg = raw[i]
        assert decoded[i] == seg and len(raw) > i + 1
        if seg.isdigit():
            assert route.host == "localhost" and int(seg) == route.port
        else:
            host, _, port = seg.rpartition(b":")
            assert int(port) == route.port
            assert route.host == host.decode().strip("[]")
            assert ALLOW.allows(host.decode())
    if route.context_path is None:
        assert route.target == target  # full-path routes forward the target unchanged
        assert kind == b"port" or raw[1] == b"absolute"
    else:
        # stripping and the context path agree, byte for byte, query included
        assert route.context_path + route.target == target
        assert route.target.startswith(b"/")


@FUZZ
@given(st.sampled_from(BASES), paths, queries)
def test_random_paths_with_a_dot_segment_are_400(base: bytes, rest: bytes, query: bytes) -> None:
    target = base + rest + query
    route = route_project(cfg(base), target)
    if is_dot_segment_anywhere(split_target(target)[0]):
        assert isinstance(route, Reject) and route.status == 400, (target, route)


@FUZZ
@given(
    st.sampled_from(BASES),
    st.sampled_from(
        [b"port/8000/", b"server/8000/", b"proxy/8000/", b"proxy/absolute/8000/", b"proxy/localhost:9/", b"lab/"]
    ),
    st.lists(segments, max_size=4).map(lambda segs: b"/".join(segs).replace(b"?", b"")),
    st.sampled_from([b"..", b".", b"%2e%2e", b"%2E%2e", b"%2e", b".%2E", b"..%2f", b"%2e%2e%2F", b"..%2Fx"]),
    st.integers(0, 10),
    queries,
)
def test_a_dot_segment_anywhere_is_400(base, prefix, rest, dots, where, query) -> None:
    """Insert a (possibly encoded) dot-segment at any segment position of a valid URL."""
    segs = (base + prefix + rest).split(b"/")
    i = 1 + where % len(segs)
    segs.insert(i, dots)
    target = b"/".join(segs) + query
    route = route_project(cfg(base), target)
    assert isinstance(route, Reject) and route.status == 400, (target, route)


@FUZZ
@given(
    st.sampled_from(BASES[1:]),
    st.sampled_from(
        [
            (b"port/8000/", 2),
            (b"server/8000/", 2),
            (b"proxy/8000/", 2),
            (b"proxy/absolute/8000/", 3),
            (b"proxy/localhost:9/", 2),
            (b"proxy/absolute/localhost:9/", 3),
            (b"lab/", 1),
        ]
    ),
    st.lists(segments, max_size=3).map(b"/".join),
    st.sampled_from([b"%2f", b"%2F"]),
    st.integers(0, 100),
    queries,
)
def test_encoded_slash_in_the_prefix_is_400_and_after_it_verbatim(base, prefix_n, rest, slash, where, query) -> None:
    prefix, nseg = prefix_n
    cfg_ = cfg(base)
    full = base + prefix
    # 1. anywhere inside the routing prefix (base segments included) → 400
    prefix_len = len(full) - 1  # the bytes before the final "/" of the prefix
    pos = 1 + where % (prefix_len - 1)
    target = full[:pos] + slash + full[pos:] + rest + query
    route = route_project(cfg_, target)
    assert isinstance(route, Reject) and route.status == 400, (target, route)
    # 2. after the prefix → forwarded verbatim (unless the rest has a dot-segment)
    target = full + rest + slash + b"x" + query
    route = route_project(cfg_, target)
    if is_dot_segment_anywhere(split_target(target)[0]):
        assert route.status == 400
        return
    assert isinstance(route, (Forward, Named)), (target, route)
    forwarded = route.rest if isinstance(route, Named) else route.target
    assert forwarded.endswith(rest + slash + b"x" + query)


@FUZZ
@given(st.sampled_from(BASES), paths, queries)
def test_redirects_stay_under_the_base_and_keep_the_query(base: bytes, rest: bytes, query: bytes) -> None:
    target = base + rest + query
    route = route_project(cfg(base), target)
    if isinstance(route, Redirect):
        path, q = split_target(target)
        assert route.location == path + b"/" + q
        assert route.location.startswith(base)


@FUZZ
@given(st.binary(max_size=40), st.sampled_from([b"/pid/server/8000", b"/python-http", b"/a"]))
def test_location_rewrite_is_idempotent_and_only_touches_absolute_paths(location: bytes, ctx: bytes) -> None:
    once = rewrite_location(location, ctx)
    assert rewrite_location(once, ctx) == once
    if location[:1] == b"/" and location[:2] != b"//":
        assert once.startswith(ctx)
        assert once.endswith(location)
    else:
        assert once == location
