"""Chunked framing (cocalcproxy/http1/body.py): what is consumed, what is decoded,
and every framing error, each fed whole, one byte at a time and with trailing bytes
that must stay unconsumed."""

from __future__ import annotations

import pytest

from cocalcproxy.http1.body import ChunkedReader
from cocalcproxy.http1.errors import BadRequest, ProtocolError


def feed_chunks(reader: ChunkedReader, chunks) -> tuple[bytes, bytes]:
    """Drive ``reader`` the way the message readers do: keep the unconsumed tail,
    append new bytes, feed from 0.  Returns (consumed, left over)."""
    buf = b""
    consumed = []
    for chunk in chunks:
        buf += chunk
        pos = reader.feed(buf, 0)
        assert 0 <= pos <= len(buf)
        consumed.append(buf[:pos])
        buf = buf[pos:]
    return b"".join(consumed), buf


def three_ways(body: bytes, decode: bool = False):
    """Yield (name, reader, consumed, left over, trailing) for the three feeding styles."""
    trailing = b"GET /next HTTP/1.1\r\n"
    for name, chunks, tail in (
        ("whole", [body], b""),
        ("bytewise", [body[i : i + 1] for i in range(len(body))], b""),
        ("trailing", [body + trailing], trailing),
    ):
        reader = ChunkedReader(decode=decode)
        consumed, left = feed_chunks(reader, chunks)
        yield name, reader, consumed, left, tail


VALID = [
    ("one-chunk", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("two-chunks", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    ("empty-body", b"0\r\n\r\n", b""),
    ("hex-upper-lower", b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", b"0123456789abcdefghij"),
    ("leading-zeros", b"0005\r\nhello\r\n000\r\n\r\n", b"hello"),
    ("extension", b"5;name=value\r\nhello\r\n0;last\r\n\r\n", b"hello"),
    ("extension-quoted", b'5;a="b;c\\"d"\r\nhello\r\n0\r\n\r\n', b"hello"),
    ("extension-bws", b"5 ;a=b\r\nhello\r\n0\t; x\r\n\r\n", b"hello"),
    ("trailers", b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:  d e \r\n\r\n", b"hello"),
    ("crlf-in-data", b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n"),
    ("binary-data", b"3\r\n\x00\xff\n\r\n0\r\n\r\n", b"\x00\xff\n"),
]


@pytest.mark.parametrize("body,payload", [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_valid_chunked_bodies(body: bytes, payload: bytes) -> None:
    for name, reader, consumed, left, tail in three_ways(body):
        assert reader.done, name
        # Raw mode: the whole framing is consumed (to be forwarded as is), nothing more.
        assert consumed == body, name
        assert left == tail, name
        assert reader.take_payload() == [], name  # nothing decoded unless asked
    for name, reader, consumed, left, tail in three_ways(body, decode=True):
        assert reader.done and consumed == body and left == tail, name
        assert b"".join(reader.take_payload()) == payload, name


def test_not_done_until_final_empty_line() -> None:
    body = b"5\r\nhello\r\n0\r\nX: y\r\n\r\n"
    for cut in range(len(body)):
        reader = ChunkedReader()
        consumed, left = feed_chunks(reader, [body[:cut]])
        assert not reader.done, cut
        assert consumed + left == body[:cut]


def test_done_reader_consumes_nothing_more() -> None:
    reader = ChunkedReader()
    assert reader.feed(b"0\r\n\r\n", 0) == 5 and reader.done
    assert reader.feed(b"0\r\n\r\nmore", 5) == 5


def test_feed_from_an_offset() -> None:
    reader = ChunkedReader(decode=True)
    buf = b"HEAD-STUFF" + b"3\r\nabc\r\n0\r\n\r\n" + b"NEXT"
    assert reader.feed(buf, 10) == len(buf) - 4
    assert reader.take_payload() == [b"abc"]


def test_partial_chunk_data_is_consumed_as_it_arrives() -> None:
    reader = ChunkedReader(decode=True)
    assert reader.feed(b"b\r\nhel", 0) == 6  # size line and the data so far
    assert reader.take_payload() == [b"hel"]
    assert reader.feed(b"lo wor", 0) == 6
    assert reader.feed(b"ld\r\n0\r\n\r\n", 0) == 9 and reader.done
    assert reader.take_payload() == [b"lo wor", b"ld"]


ERRORS = [
    ("size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("size-0x-prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("size-minus", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("size-empty", b"\r\nhello\r\n0\r\n\r\n"),
    ("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("size-trailing-space-no-ext", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("size-17-digits", b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"),
    ("size-underscore", b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"),
    ("size-bare-lf", b"5\nhello\r\n0\r\n\r\n"),
    ("size-bare-cr", b"5\rhello\r\n0\r\n\r\n"),
    ("ext-bare-lf", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ("ext-control", b"5;a\x01b\r\nhello\r\n0\r\n\r\n"),
    ("ext-nul", b"5;a\x00\r\nhello\r\n0\r\n\r\n"),
    ("ext-without-semicolon", b"5 x\r\nhello\r\n0\r\n\r\n"),
    ("data-too-long", b"5\r\nhelloX\r\n0\r\n\r\n"),
    ("data-too-short", b"5\r\nhell\r\n0\r\n\r\n"),
    ("data-lf-only", b"5\r\nhello\n0\r\n\r\n"),
    ("data-cr-only", b"5\r\nhello\r0\r\n\r\n"),
    ("trailer-no-colon", b"0\r\nnot a header\r\n\r\n"),
    ("trailer-obs-fold", b"0\r\nX: a\r\n b\r\n\r\n"),
    ("trailer-nul", b"0\r\nX: a\x00\r\n\r\n"),
    ("trailer-bare-lf", b"0\r\nX: a\nY: b\r\n\r\n"),
    ("trailer-bare-lf-end", b"0\r\n\n"),
    ("final-bare-lf", b"0\n\n"),
]


@pytest.mark.parametrize("body", [e[1] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_chunk_framing(body: bytes) -> None:
    for style, chunks in (("whole", [body]), ("bytewise", [body[i : i + 1] for i in range(len(body))])):
        reader = ChunkedReader(error=BadRequest)
        with pytest.raises(BadRequest) as info:
            feed_chunks(reader, chunks)
        assert info.value.status == 400, style


def test_error_class_is_the_callers() -> None:
    class Mine(ProtocolError):
        status = 502

    with pytest.raises(Mine):
        ChunkedReader(error=Mine).feed(b"zz\r\n", 0)


def _size_line(total: int, ext: bool) -> bytes:
    """A chunk-size line (without CRLF) of exactly ``total`` bytes for a 1-byte chunk."""
    if ext:
        return b"1;" + b"e" * (total - 2)
    return b"0" * (total - 1) + b"1" if total <= 16 else b"1;" + b"e" * (total - 2)


@pytest.mark.parametrize("ext", [True, False], ids=["extension", "plain"])
@pytest.mark.parametrize("style", ["whole", "bytewise", "trailing"])
def test_chunk_size_line_limit_4096(style: str, ext: bool) -> None:
    """SPEC §3: a chunk-size line (extensions included) over 4 KiB is a 400; 4 KiB is fine."""
    for length, ok in ((4096, True), (4097, False)):
        line = _size_line(length, ext or length > 16)
        assert len(line) == length
        body = line + b"\r\nx\r\n0\r\n\r\n"
        if style == "whole":
            chunks = [body]
        elif style == "bytewise":
            chunks = [body[i : i + 1] for i in range(len(body))]
        else:
            chunks = [body + b"tail"]
        reader = ChunkedReader(error=BadRequest)
        if ok:
            consumed, left = feed_chunks(reader, chunks)
            assert reader.done and consumed == body, (style, length)
        else:
            with pytest.raises(BadRequest) as info:
                feed_chunks(reader, chunks)
            assert info.value.status == 400
            assert "too long" in info.value.message


def test_chunk_size_line_limit_without_crlf_fails_before_the_line_ends() -> None:
    """A client streaming an endless extension is cut off at the limit, not buffered."""
    reader = ChunkedReader(error=BadRequest)
    with pytest.raises(BadRequest):
        reader.feed(b"1;" + b"e" * 5000, 0)


def test_trailer_section_limit() -> None:
    trailer = b"X: " + b"v" * 100 + b"\r\n"
    body = b"0\r\n" + trailer * 10 + b"\r\n"
    reader = ChunkedReader(max_trailer=len(trailer) * 10 + 2)
    assert feed_chunks(reader, [body]) == (body, b"") and reader.done
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))]):
        reader = ChunkedReader(max_trailer=len(trailer) * 10 - 1, error=BadRequest)
        with pytest.raises(BadRequest):
            feed_chunks(reader, chunks)


def test_endless_trailer_line_is_cut_off() -> None:
    reader = ChunkedReader(max_trailer=1000, error=BadRequest)
    with pytest.raises(BadRequest):
        reader.feed(b"0\r\nX: " + b"v" * 2000, 0)
