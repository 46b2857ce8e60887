#!/bin/sh
# Side-by-side benchmark: the shared harness (nginx, configurable-http-proxy,
# jupyter-server-proxy, websockify, Twisted's proxies) with cocalcproxy from
# this checkout added as a candidate.  All arguments go to the harness, e.g.
#   bench/run.sh                                   # every peer, every suite (~15 min)
#   bench/run.sh --only cocalcproxy,nginx-nobuf --suites http --runs 1
#   bench/run.sh --only cocalcproxy-bridge,websockify --suites tcp
# COCALCPROXY_BENCH_HARNESS: the harness folder (default ../shared/bench beside the checkout)
# COCALCPROXY_PYTHON: the Python whose twistd runs the proxy (default .venv/bin/python)
# COCALCPROXY_BASE: another checkout (an older commit) measured in the same run as
#   candidates cocalcproxy-base and cocalcproxy-base-bridge, e.g.
#   git worktree add /tmp/base <commit> && COCALCPROXY_BASE=/tmp/base bench/run.sh --only cocalcproxy,cocalcproxy-base
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${COCALCPROXY_BENCH_HARNESS:-$REPO/../shared/bench}
PY=${COCALCPROXY_PYTHON:-$REPO/.venv/bin/python}
TWISTD=$(dirname "$PY")/twistd
[ -x "$TWISTD" ] || { echo "no twistd next to $PY; install first (see README)" >&2; exit 2; }
[ -x "$HARNESS/run.sh" ] || { echo "benchmark harness not found at $HARNESS" >&2; exit 2; }
RUN="env PYTHONPATH=$REPO $TWISTD -n --pidfile= cocalcproxy"
# The project role for HTTP and WebSocket; the bridge role (WebSocket -> raw TCP echo) for suite tcp.
PROJECT="cocalcproxy;$RUN project --listen tcp:{port}:interface=127.0.0.1;http://127.0.0.1:{port}/proxy/{backend};ws://127.0.0.1:{port}/proxy/{backend};"
BRIDGE="cocalcproxy-bridge;$RUN bridge --listen tcp:{port}:interface=127.0.0.1 --target tcp:127.0.0.1:{backend};;;ws://127.0.0.1:{port}/#binary"
set -- --add "$PROJECT" --add "$BRIDGE" "$@"
if [ -n "${COCALCPROXY_BASE:-}" ]; then
  BASE_RUN="env PYTHONPATH=$COCALCPROXY_BASE $TWISTD -n --pidfile= cocalcproxy"
  set -- --add "cocalcproxy-base;$BASE_RUN project --listen tcp:{port}:interface=127.0.0.1;http://127.0.0.1:{port}/proxy/{backend};ws://127.0.0.1:{port}/proxy/{backend};" \
         --add "cocalcproxy-base-bridge;$BASE_RUN bridge --listen tcp:{port}:interface=127.0.0.1 --target tcp:127.0.0.1:{backend};;;ws://127.0.0.1:{port}/#binary" "$@"
fi
# Work in a copy: the harness writes its results, logs and node modules where it runs.
W=${TMPDIR:-/tmp}/cpx-bench
mkdir -p "$W" && cp -a "$HARNESS/." "$W/"
exec "$W/run.sh" "$@"
