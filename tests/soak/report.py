"""The soak's results as a dict (for JSON) and as Markdown tables (for the docs and stdout)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def markdown(r: dict) -> str:
    lines = [
        f"### Soak {r['date']}: {r['seconds']:.0f} s of traffic, {r['workers']} workers + the revoker",
        "",
        f"Machine: {r['machine']}. Seed {r['seed']}. Hub database: PostgreSQL (throwaway, loopback).",
        "",
        "| kind | operations | failures | what was checked |",
        "| --- | ---: | ---: | --- |",
    ]
    for kind, row in r["kinds"].items():
        lines.append(f"| {kind} | {row['ok'] + row['failed']} | {row['failed']} | {row['what']} |")
    lines.append(f"| **total** | **{r['operations']}** | **{r['failures']}** | |")
    lines += ["", "| counter | value |", "| --- | ---: |"]
    for name, value in r["counters"].items():
        if name.startswith("bytes"):
            value = f"{value / (1 << 20):,.0f} MiB"
        lines.append(f"| {name} | {value} |")
    if r["revocations"]:
        lines += ["", "| revocation | times | slowest to take effect (s) | mean (s) |", "| --- | ---: | ---: | ---: |"]
        for mode, row in r["revocations"].items():
            lines.append(f"| {mode} | {row['n']} | {row['max']:.3f} | {row['mean']:.3f} |")
    lines += [
        "",
        "| process | RSS start (MiB) | RSS after warm-up | RSS end of load | RSS idle after | peak RSS | "
        "growth warm-up → end | fds start | peak fds | fds idle after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in r["processes"].items():
        lines.append(
            f"| {name} | {mib(p['rss_start_kib'])} | {mib(p['rss_warm_kib'])} | {mib(p['rss_end_kib'])} | "
            f"{mib(p['rss_idle_kib'])} | {mib(p['rss_peak_kib'])} | {p['rss_growth_kib'] / 1024:+.1f} | "
            f"{p['fds_start']} | {p['fds_peak']} | {p['fds_idle']} |")
    if r.get("notes"):
        lines += [""] + [f"- {n}" for n in r["notes"]]
    if r["failure_details"]:
        lines += ["", "Failures (first 50):", ""] + [f"- `{d}`" for d in r["failure_details"]]
        lines += ["", "Logs:", ""] + [f"- {name}: `{path}`" for name, path in r.get("logs", {}).items()]
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model or platform.machine()}), Linux {platform.release()}, " \
           f"Python {platform.python_version()}"


def today() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def write(r: dict, path: str | None) -> str:
    text = markdown(r)
    print("\n" + text)
    if path:
        Path(path).write_text(json.dumps(r, indent=2) + "\n" if path.endswith(".json") else text)
    return text
