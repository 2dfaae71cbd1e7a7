#!/usr/bin/env bash
# make cluster: redis-server, 2 routers and 2 edges on this machine, from the configs beside this
# script. Prints each client port; Ctrl-C (or SIGTERM) stops them all (SIGINT: stop now). Every
# line a process prints is prefixed with its name.
set -u
# Job control: each process gets its own process group, so SIGINT is not ignored in background
# jobs, and a Ctrl-C reaches this script, which stops the rest.
set -m
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
redis=${REDIS_SERVER:-redis-server}
command -v "$redis" >/dev/null || { echo "redis-server not found (apt-get install redis-server, or set REDIS_SERVER)"; exit 1; }
pids=()
stop() {
  trap - INT TERM
  echo "stopping the cluster"
  kill -INT "${pids[@]}" 2>/dev/null
  # Whatever has not stopped within 5 s is killed.
  ( sleep 5; kill -KILL "${pids[@]}" 2>/dev/null ) & guard=$!
  wait "${pids[@]}" 2>/dev/null
  kill "$guard" 2>/dev/null
  exit 0
}
trap stop INT TERM
# $! is the command's own pid (its output goes through sed by process substitution).
run() { local name=$1; shift; "$@" > >(sed -u "s/^/[$name] /") 2>&1 & pids+=($!); }
cd "$root"
run redis "$redis" --port 6390 --bind 127.0.0.1 --save "" --appendonly no
run router-1 bin/meshbroker router -c "$here/router-1.conf"
run router-2 bin/meshbroker router -c "$here/router-2.conf"
# Edges attach to the first router of their list that answers: start them once router-1 listens,
# so that both share it (until the router mesh exists, edges on different routers are apart).
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/7101) 2>/dev/null && break; sleep 0.1; done
run edge-1 bin/meshbroker edge -c "$here/edge-1.conf"
run edge-2 bin/meshbroker edge -c "$here/edge-2.conf"
sleep 1
cat <<'INFO'
local cluster: Redis 127.0.0.1:6390, routers 127.0.0.1:7101 and 127.0.0.1:7102
  edge-1: NATS 127.0.0.1:4222, WebSocket ws://127.0.0.1:8081, monitoring http://127.0.0.1:8222
  edge-2: NATS 127.0.0.1:4223, WebSocket ws://127.0.0.1:8082, monitoring http://127.0.0.1:8223
Ctrl-C stops them all.
INFO
wait
