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
import tempfile
from pathlib import Path

import pytest
from websockify.websocket import WebSocket, WebSocketWantReadError

from tests.support.backends import ScriptedBackend
from tests.support.procs import ProxyProcess, free_port
from tests.support.waiting import wait_until

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


class Xvnc:
    """One ``Xvnc`` process; ``listening`` tells whether it bound its RFB port (its log says so)."""

    def __init__(self, xvnc: str, port: int) -> None:
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="xvnc-", suffix=".log", delete=False)
        read_fd, write_fd = os.pipe()
        self.read_fd = read_fd
        self.proc = subprocess.Popen(
            [xvnc, "-displayfd", str(write_fd), "-rfbport", str(port), "-SecurityTypes", "None", "-localhost",
             "-geometry", "640x480", "-depth", "24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        os.close(write_fd)

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def listening(self, timeout: float = 15.0) -> bool:
        display = b""
        while not display.endswith(b"\n"):  # the display number, once the X server is up
            chunk = os.read(self.read_fd, 16)
            if not chunk:
                return False
            display += chunk
        # The port is free-picked, so it may have been taken meanwhile: trust only Xvnc's own word.
        return wait_until(lambda: f"port {self.port}" in self.log_text() or self.proc.poll() is not None,
                          timeout) and self.proc.poll() is None and "Listening for VNC connections" in self.log_text()

    def stop(self) -> None:
        os.close(self.read_fd)  # only now: Xvnc exits when a write of its display number meets a closed pipe
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def vnc_server():
    """``Xvnc`` (a virtual X server that speaks RFB) on a free port, no password."""
    xvnc = shutil.which("Xvnc")
    if xvnc is None:
        if os.environ.get("CI"):
            pytest.fail("Xvnc is missing: .ci/run installs tigervnc-standalone-server")
        pytest.skip("Xvnc not installed (apt-get install tigervnc-standalone-server)")
    for _ in range(3):
        server = Xvnc(xvnc, free_port())
        if server.listening():
            break
        print(server.log_text())
        server.stop()
    else:
        pytest.fail("Xvnc did not start listening (log above)")
    try:
        yield server.port
        print(server.log_text())  # shown by pytest if the test failed
    finally:
        server.stop()


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
