"""The bridge with software we did not write: websockify's own WebSocket client,
and a real VNC server (TigerVNC's ``Xvnc`` from Debian, installed by ``.ci/run``)
whose RFB handshake and a full framebuffer update pass through the bridge
end to end — what noVNC does first when it opens a desktop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess

import pytest
from websockify.websocket import WebSocket, WebSocketWantReadError

from tests.support.backends import ScriptedBackend
from tests.support.procs import ProxyProcess, free_port, wait_for_port

from .test_bridge import echo


class WebsockifyClient:
    """websockify's blocking client, reading bytes whatever the message boundaries."""

    def __init__(self, port: int, protocols: list[str]) -> None:
        self.ws = WebSocket()
        while True:
            try:
                self.ws.connect(f"ws://127.0.0.1:{port}/websockify", protocols=protocols)
                break
            except WebSocketWantReadError:
                continue
        self.ws.socket.settimeout(20)
        self.buf = b""

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                msg = self.ws.recvmsg()
            except WebSocketWantReadError:  # part of a frame so far (the socket blocks, with a timeout)
                continue
            if msg is None:
                raise EOFError(f"closed ({self.ws.close_code}) with {len(self.buf)} of {n} bytes")
            self.buf += msg
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        self.ws.sendmsg(data)

    def close(self) -> None:
        self.ws.shutdown(socket.SHUT_RDWR)
        self.ws.socket.close()


@pytest.mark.parametrize("protocols, chosen", [([], None), (["binary"], "binary")])
def test_websockify_client_through_the_bridge(protocols, chosen):
    with ScriptedBackend(echo) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}"]) as p:
        client = WebsockifyClient(p.port, protocols)
        try:
            assert client.ws.protocol == chosen  # websockify checks the server's choice itself
            data = os.urandom(200_000)
            client.send(data)
            assert client.read(len(data)) == data
        finally:
            client.close()


@pytest.fixture
def vnc_server():
    """``Xvnc`` (a virtual X server that speaks RFB) on a free port, no password."""
    xvnc = shutil.which("Xvnc")
    if xvnc is None:
        if os.environ.get("CI"):
            pytest.fail("Xvnc is missing: .ci/run installs tigervnc-standalone-server")
        pytest.skip("Xvnc not installed (apt-get install tigervnc-standalone-server)")
    port = free_port()
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvnc, "-displayfd", str(write_fd), "-rfbport", str(port), "-SecurityTypes", "None", "-localhost",
         "-geometry", "640x480", "-depth", "24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    os.close(write_fd)
    try:
        display = b""
        while not display.endswith(b"\n"):  # the display number, once the server is up
            chunk = os.read(read_fd, 16)
            assert chunk, "Xvnc exited before it was ready"
            display += chunk
        wait_for_port(port, proc=proc)
        yield port
    finally:
        os.close(read_fd)  # only now: Xvnc exits when a write of its display number meets a closed pipe
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_rfb_handshake_and_framebuffer_update_from_a_real_vnc_server(vnc_server):
    with ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{vnc_server}"]) as p:
        client = WebsockifyClient(p.port, ["binary"])
        try:
            assert client.read(12) == b"RFB 003.008\n"
            client.send(b"RFB 003.008\n")
            (count,) = struct.unpack("!B", client.read(1))
            assert 1 in client.read(count)  # security type None
            client.send(b"\x01")
            assert client.read(4) == b"\0\0\0\0"  # SecurityResult OK
            client.send(b"\x01")  # ClientInit, shared
            width, height = struct.unpack("!HH", client.read(4))
            pixel_format = client.read(16)
            (name_length,) = struct.unpack("!I", client.read(4))
            client.read(name_length)
            assert (width, height) == (640, 480)
            bytes_per_pixel = pixel_format[0] // 8
            # FramebufferUpdateRequest for the whole screen, not incremental: raw pixels come back.
            client.send(struct.pack("!BBHHHH", 3, 0, 0, 0, width, height))
            msg_type, _, rects = struct.unpack("!BBH", client.read(4))
            assert msg_type == 0 and rects >= 1
            pixels = 0
            for _ in range(rects):
                x, y, w, h, encoding = struct.unpack("!HHHHi", client.read(12))
                assert encoding == 0  # raw: the client asked for no other encoding
                client.read(w * h * bytes_per_pixel)
                pixels += w * h
            assert pixels == width * height
        finally:
            client.close()
