#!/usr/bin/env bash
# Starts and stops a Docker engine for the compose demo and its test, on a machine where none
# runs as a service (e.g. a container or CI machine without systemd).
#   deploy/docker/engine.sh start [--state FILE]   make sure `docker` and a compose command
#       are installed (Debian's docker.io, docker-compose, debootstrap, iptables, via
#       deploy/install_deps.sh --docker) and that an engine answers; when none does, start
#       dockerd in the background (log: /var/log/mobilenet-dockerd.log, or DOCKERD_LOG) and
#       write what `stop` needs to FILE.
#   deploy/docker/engine.sh stop [--state FILE]    stop the dockerd that `start` started, and
#       put the iptables FORWARD policy and IPv4 forwarding back as they were before
#       (dockerd turns forwarding on and, when it was off, sets the FORWARD policy to DROP).
#       Nothing to do when `start` found an engine already running.
# FILE defaults to /run/mobilenet-dockerd.state. Needs root to install or start anything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() { echo "engine.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: engine.sh start|stop [--state FILE]"
action=$1
shift
state=/run/mobilenet-dockerd.state
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state="${2:?--state needs a file}"; shift 2 ;;
    --state=*) state="${1#*=}"; shift ;;
    *) die "unknown argument '$1' (usage: engine.sh start|stop [--state FILE])" ;;
  esac
done

forward_policy() {  # the filter table's FORWARD policy (ACCEPT/DROP), or "" without iptables
  command -v iptables >/dev/null || return 0
  iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3 }'
}

start() {
  if docker info >/dev/null 2>&1 && { command -v docker-compose >/dev/null ||
                                      docker compose version >/dev/null 2>&1; }; then
    return 0  # an engine runs and a compose command exists: nothing to start
  fi
  "$root/deploy/install_deps.sh" --docker
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "the Docker engine is not running and starting it needs root"
  command -v dockerd >/dev/null || die "dockerd is missing after installing docker.io"
  local log="${DOCKERD_LOG:-/var/log/mobilenet-dockerd.log}" policy ip_forward
  policy=$(forward_policy)
  ip_forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || true)
  mkdir -p "$(dirname "$log")" "$(dirname "$state")"
  echo "Starting dockerd (log: $log) ..."
  # setsid: the engine outlives this script (and the terminal or test that called it).
  setsid dockerd >>"$log" 2>&1 </dev/null &
  local pid=$!
  printf 'pid=%s\nforward_policy=%s\nip_forward=%s\nlog=%s\n' "$pid" "$policy" "$ip_forward" \
    "$log" >"$state"
  local i
  for i in $(seq 60); do
    docker info >/dev/null 2>&1 && { echo "dockerd is up (pid $pid)."; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  tail -n 20 "$log" >&2
  die "dockerd did not come up (the end of its log is above; full log: $log)"
}

stop() {
  [ -f "$state" ] || return 0  # start did not start an engine
  local pid="" forward_policy="" ip_forward="" log="" key value
  while IFS='=' read -r key value; do
    case "$key" in
      pid) pid=$value ;;
      forward_policy) forward_policy=$value ;;
      ip_forward) ip_forward=$value ;;
      log) log=$value ;;
    esac
  done <"$state"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
     [ "$(basename "$(readlink -f "/proc/$pid/exe" 2>/dev/null)")" = dockerd ]; then
    echo "Stopping dockerd (pid $pid) ..."
    kill -TERM "$pid"
    local i
    for i in $(seq 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "engine.sh: dockerd (pid $pid) still running after 60 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "$forward_policy" ] && [ "$(forward_policy)" != "$forward_policy" ]; then
    iptables -P FORWARD "$forward_policy"
    echo "iptables FORWARD policy restored to $forward_policy."
  fi
  if [ -n "$ip_forward" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$ip_forward" ]; then
    echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
    echo "IPv4 forwarding restored to $ip_forward."
  fi
  rm -f "$state"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) die "unknown action '$action' (expected start or stop)" ;;
esac
