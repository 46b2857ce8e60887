"""Request-target helpers and the path-safety rules of SPEC §3 (cocalcproxy/routing/paths.py)."""

from __future__ import annotations

import pytest

from cocalcproxy.routing.paths import (
    check_path,
    has_dot_segment,
    has_encoded_slash,
    normalize_base_url,
    parse_port,
    split_target,
)
from cocalcproxy.routing.types import Reject


@pytest.mark.parametrize(
    "target,path,query",
    [
        (b"/a/b", b"/a/b", b""),
        (b"/a/b?", b"/a/b", b"?"),
        (b"/a?x=1&y=%2F", b"/a", b"?x=1&y=%2F"),
        (b"/a?x=?y", b"/a", b"?x=?y"),
        (b"/a%3Fb?c", b"/a%3Fb", b"?c"),
        (b"?only", b"", b"?only"),
    ],
)
def test_split_target_is_exact(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)
    assert path + query == target


DOT_SEGMENT_PATHS = [
    b"/..",
    b"/.",
    b"/../x",
    b"/./x",
    b"/a/../b",
    b"/a/./b",
    b"/a/..",
    b"/a/.",
    b"/a/b/",
    b"/%2e%2e/x",
    b"/%2E%2E/x",
    b"/%2e%2E/x",
    b"/.%2e/x",
    b"/%2e./x",
    b"/%2e/x",
    b"/a/%2E",
    b"/..%2f/x",
    b"/..%2Fx",
    b"/a%2f..%2fb",
    b"/a%2F.",
    b"/%2e%2e%2f",
    b"/x/%2e%2e%2f%2e%2e%2fetc",
]


@pytest.mark.parametrize("path", [p for p in DOT_SEGMENT_PATHS if p != b"/a/b/"])
def test_dot_segments_are_found_raw_or_encoded(path: bytes) -> None:
    assert has_dot_segment(path)
    reject = check_path(path)
    assert reject is not None and reject.status == 400


@pytest.mark.parametrize(
    "path",
    [
        b"/",
        b"/a/b/",
        b"/...",
        b"/.../x",
        b"/.a",
        b"/a.",
        b"/..a",
        b"/a..",
        b"/a..b",
        b"/%2e%2e%2e",
        b"/%2ea",
        b"/.hidden/file",
        b"/%252e%252e/x",  # a literal "%2e%2e" after one decoding: not a dot segment
        b"/a/b.c/d",
        b"/a%2fb",
    ],
)
def test_names_with_dots_are_not_dot_segments(path: bytes) -> None:
    assert not has_dot_segment(path)
    assert check_path(path) is None


@pytest.mark.parametrize("path", [b"", b"a/b", b"*", b"http://h/x", b"%2fa"])
def test_path_must_be_absolute(path: bytes) -> None:
    assert check_path(path) == Reject(400, "The request target must be an absolute path.")


@pytest.mark.parametrize(
    "segment,encoded",
    [
        (b"a%2fb", True),
        (b"a%2Fb", True),
        (b"%2F", True),
        (b"a/b", False),
        (b"a%2eb", False),
        (b"%252f", False),
        (b"", False),
    ],
)
def test_has_encoded_slash(segment: bytes, encoded: bool) -> None:
    assert has_encoded_slash(segment) is encoded


@pytest.mark.parametrize(
    "base,normal",
    [("/", "/"), ("", "/"), ("foo", "/foo/"), ("/foo", "/foo/"), ("/foo/", "/foo/"), ("//foo//bar//", "/foo/bar/")],
)
def test_normalize_base_url(base: str, normal: str) -> None:
    assert normalize_base_url(base) == normal


@pytest.mark.parametrize(
    "segment,port",
    [
        (b"1", 1),
        (b"80", 80),
        (b"8000", 8000),
        (b"65535", 65535),
        (b"08000", 8000),
        (b"0", None),
        (b"00000", None),
        (b"65536", None),
        (b"99999", None),
        (b"123456", None),
        (b"", None),
        (b"-1", None),
        (b"+80", None),
        (b" 80", None),
        (b"8o", None),
        (b"\xd9\xa1", None),  # ARABIC-INDIC DIGIT ONE in UTF-8: not a port
        (b"0x50", None),
    ],
)
def test_parse_port(segment: bytes, port) -> None:
    assert parse_port(segment) == port
