"""CPU time each hop of the chain spends per request (keep-alive 1 KiB GETs).

Starts project, host and hub (SQLite, no TLS) with the test suite's own
``Chain`` helper, an nginx backend from the shared harness, pins the three
roles to CPU 1 and wrk to CPU 0, and loads each entry point in turn (project
alone, host → project, hub → host → project) for a few seconds.  Prints the
requests per second and, for every process, user + system CPU microseconds
per request, read from ``/proc/PID/stat``: what a hop costs, whatever the
scheduling between the three processes adds.

    .venv/bin/python bench/hop_cpu.py [--seconds 6]

Needs wrk and nginx (bench/run.sh installs them) and the harness at
../shared/bench (or COCALCPROXY_BENCH_HARNESS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.chain import PROJECT, Chain  # noqa: E402
from tests.support.procs import ProxyProcess, cpu_seconds, free_port  # noqa: E402


def wrk(url: str, seconds: int, headers: list[str]) -> float:
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c50", f"-d{seconds}s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers from {url}:\n{out}")
    return float(next(line for line in out.splitlines() if line.startswith("Requests/sec")).split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=6)
    args = ap.parse_args()
    harness = Path(os.environ.get("COCALCPROXY_BENCH_HARNESS", REPO.parent / "shared" / "bench"))
    work = Path(tempfile.mkdtemp(prefix="cocalcproxy-hops-"))
    data = work / "data"
    data.mkdir()
    (data / "1k.bin").write_bytes(os.urandom(1024))
    port = free_port()
    nginx = subprocess.Popen(["bash", str(harness / "nginx_backend.sh"), str(port), str(data)], start_new_session=True,
                             cwd=work)
    chain = None
    try:
        time.sleep(1.5)
        chain = Chain(work / "chain")
        hub = ProxyProcess("hub", ["--database", chain.database_url, "--hub-secret-file", str(chain.secret_file)])
        chain.procs.append(hub)
        procs = {"project": chain.project, "host": chain.host, "hub": hub}
        for p in procs.values():
            subprocess.run(["taskset", "-pc", "1", str(p.pid)], capture_output=True, check=True)
        path = chain.backend_url_path(port, "1k.bin")
        entries = {
            "project": (f"http://127.0.0.1:{chain.project.port}/{PROJECT}/server/{port}/1k.bin", []),
            "host → project": (f"http://127.0.0.1:{chain.host.port}{path}",
                               ["X-CoCalc-Hub-Secret: " + chain.secret_file.read_text().strip()]),
            "hub → host → project": (f"http://127.0.0.1:{hub.port}{path}", ["Cookie: " + chain.cookie()]),
        }
        print("| entry | req/s | project µs/req | host µs/req | hub µs/req |\n|---|---|---|---|---|")
        for name, (url, headers) in entries.items():
            before = {n: cpu_seconds(p.pid) for n, p in procs.items()}
            rps = wrk(url, args.seconds, headers)
            n = rps * args.seconds
            cost = [f"{1e6 * (cpu_seconds(p.pid) - before[k]) / n:.0f}" for k, p in procs.items()]
            print(f"| {name} | {rps:,.0f} | " + " | ".join(cost) + " |")
    finally:
        if chain is not None:
            chain.close()
        os.killpg(nginx.pid, 15)


if __name__ == "__main__":
    main()
