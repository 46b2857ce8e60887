"""``GET B``: a plain HTML launcher page (no JavaScript) listing every enabled server."""

from __future__ import annotations

from html import escape

_STATUS = {"running": "running", "starting": "starting", "stopping": "stopping", "stopped": "not started"}


def launcher_page(supervisor, base: str) -> bytes:
    items = []
    for name, server in sorted(supervisor.servers.items(), key=lambda kv: kv[1].spec.launcher_entry.title.lower()):
        spec = server.spec
        entry = spec.launcher_entry
        if not entry.enabled:
            continue
        href = entry.path_info if entry.path_info.startswith("/") else base + entry.path_info
        target = ' target="_blank" rel="noopener"' if spec.new_browser_tab else ""
        icon = (f'<img class="icon" src="{escape(base)}server-proxy/icon/{escape(name)}" alt="" width="32" height="32"> '
                if entry.icon_path else '<span class="icon noicon"></span> ')
        status = _STATUS.get(server.state, server.state) if spec.supervised else "external"
        items.append(
            f'<li class="server" id="server-{escape(name)}">{icon}'
            f'<a href="{escape(href)}"{target}>{escape(entry.title)}</a> '
            f'<span class="status">{escape(status)}</span></li>'
        )
    listing = "\n".join(items) if items else "<li>No servers are configured.</li>"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Servers</title>
<style>
body{{font-family:sans-serif;margin:2em}} ul{{list-style:none;padding:0}}
li.server{{display:flex;align-items:center;gap:.6em;margin:.5em 0}}
.icon{{width:32px;height:32px;display:inline-block}} .status{{color:#666;font-size:.9em}}
</style></head><body>
<h1>Servers</h1>
<ul id="servers">
{listing}
</ul>
<p>Other web servers in this project: <code>{escape(base)}server/PORT/</code> (the server sees <code>/</code>),
<code>{escape(base)}port/PORT/</code> (the server sees the full path).</p>
</body></html>
"""
    return page.encode("utf-8")
