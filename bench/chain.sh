#!/bin/sh
# The chain benchmark (bench/chain.py) in the shared harness: project alone,
# host -> project, hub -> host -> project, hub with TLS.  Arguments go to the
# harness driver, e.g.
#   bench/chain.sh --runs 3 --suites http,ws --tests ka,down,up
# COCALCPROXY_BENCH_HARNESS: the harness folder (default ../shared/bench beside the checkout)
# COCALCPROXY_PYTHON: the Python whose twistd runs the proxy (default .venv/bin/python)
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${COCALCPROXY_BENCH_HARNESS:-$REPO/../shared/bench}
export COCALCPROXY_PYTHON=${COCALCPROXY_PYTHON:-$REPO/.venv/bin/python}
[ -x "$(dirname "$COCALCPROXY_PYTHON")/twistd" ] || { echo "no twistd next to $COCALCPROXY_PYTHON; install first (see README)" >&2; exit 2; }
cd "$HARNESS"
# work in a writable copy (results, logs, node modules), never in the harness folder itself
w=${TMPDIR:-/tmp}/cpx-bench; mkdir -p "$w"; cp -a ./. "$w/"; cd "$w"
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update && apt-get install -y nginx wrk curl
fi
[ -d node_modules/ws ] || npm install
ulimit -n "$(ulimit -Hn)"
taskset -c 0 "$COCALCPROXY_PYTHON" "$REPO/bench/chain.py" --suites http,ws --tests ka,down,up "$@"
python3 report.py "$(ls -t results/results-*.json | head -1)" > results/chain-latest.md
cat results/chain-latest.md
