#!/bin/bash
# Start the roles of one chain configuration in the foreground (bench/chain.py's
# candidates); every process is in this script's process group, so stopping
# the group (the harness's killpg) stops them all, each signalled once — no
# trap here, which would signal them again while they shut down.
#   chain_roles.sh MODE PORT STATE_DIR TWISTD
# MODE: project | host | hub | hubtls — the outermost role listens on PORT;
# the inner ones on PORT+10 (project) and PORT+11 (host).
set -e
mode=$1; port=$2; state=$3; twistd=$4
pid=$(cat "$state/project_id")
run="$twistd -n --pidfile= cocalcproxy"
if [ "$mode" = project ]; then
  exec $run project --project-id "$pid" --no-entry-points --listen "tcp:$port:interface=127.0.0.1"
fi
$run project --project-id "$pid" --no-entry-points --listen "tcp:$((port + 10)):interface=127.0.0.1" &
if [ "$mode" = host ]; then
  $run host --registry "$state/registry-$((port + 10)).sqlite3" --listen "tcp:$port:interface=127.0.0.1" &
else
  $run host --registry "$state/registry-$((port + 10)).sqlite3" --hub-secret-file "$state/secret" \
      --listen "tcp:$((port + 11)):interface=127.0.0.1" &
  tls=""
  [ "$mode" = hubtls ] && tls="--https-key $state/hub.key --https-cert $state/hub.crt"
  $run hub --database "sqlite:///$state/hub-$((port + 11)).sqlite3" --hub-secret-file "$state/secret" $tls \
      --listen "tcp:$port:interface=127.0.0.1" &
fi
wait
