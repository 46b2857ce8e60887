"""Every size and time default in one place, with the SPEC section it comes from."""

from __future__ import annotations

#: SPEC §3: a request line over 8 KiB is answered 414 (checked before the head limit).
MAX_REQUEST_LINE = 8192
#: SPEC §2 ``--max-header-bytes``: request line + headers larger than this → 431.
MAX_HEADER_BYTES = 65536
#: SPEC §3: a chunk-size line (with extensions) over 4 KiB → 400.
MAX_CHUNK_LINE = 4096
#: Response heads from backends larger than this → 502 (not in the SPEC; generous).
MAX_RESPONSE_HEAD = 65536

CONNECT_TIMEOUT = 10.0  # SPEC §2 --connect-timeout
HEADER_TIMEOUT = 30.0  # SPEC §2 --header-timeout
IDLE_TIMEOUT = 300.0  # SPEC §2 --idle-timeout
MAX_CONNECTIONS = 10000  # SPEC §2 --max-connections
DRAIN_TIMEOUT = 10.0  # SPEC §2: SIGTERM lets in-flight requests finish for this long

#: A named server's rewrite_response buffers at most this much of a response (then 502).
REWRITE_MAX_BYTES = 64 << 20
#: Seconds between SIGTERM and SIGKILL when a server process is stopped.
KILL_GRACE = 3.0

#: Idle keep-alive connections kept per backend address, and how long.
POOL_MAX_IDLE_PER_TARGET = 64
POOL_IDLE_TIMEOUT = 60.0

#: Lingering close of an HTTP connection answered before its request was read
#: (a 404 to an upload, say): the client may stay silent this long between
#: reads, and the connection lingers this long in all (nginx's lingering_timeout
#: and lingering_time).
LINGER_TIMEOUT = 5.0
LINGER_TIME = 30.0
#: A relay (tunnel, bridge) whose one side is gone: how long the other may stay
#: silent once our FIN went out, and how long our last writes to it may take.
RELAY_LINGER = 30.0
RELAY_FLUSH_TIMEOUT = 300.0
