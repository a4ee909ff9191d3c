#!/usr/bin/env bash
# A 3-member etcd cluster on loopback, for auction-bench's comparison backend.
#
#   scripts/etcd-cluster.sh start DIR   # members e1..e3, data and logs under DIR
#   scripts/etcd-cluster.sh stop DIR    # stops exactly the members started in DIR (by pid)
#   scripts/etcd-cluster.sh leader DIR  # prints the pid of the current leader
#
# Client endpoints: 127.0.0.1:23791, :23792, :23793 (auction-bench's --etcd-endpoints default);
# peer ports 23801..23803. Needs Debian's etcd-server (3.4): apt-get install -y etcd-server.
# etcd's defaults are kept (fsync on every commit; heartbeat 100 ms, election timeout 1 s),
# so the comparison is with etcd as shipped. Set ETCD_EXTRA for more flags.
#
# Each member's pid is in DIR/eN.pid. A pid counts as the member only while it is a process
# whose command line holds the member's data directory (DIR/eN.etcd, DIR made absolute), so a
# stale pid file (a member killed with kill -9, its pid reused) never makes `stop` signal, or
# `start` skip, an unrelated process. auction-bench --etcd-dir DIR applies the same check
# before it signals a leader, and runs `start DIR` to bring a stopped member back (a member
# whose data directory exists restarts on it; the --initial-cluster flags are then ignored).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop|leader DIR" >&2
    exit 2
fi
etcd=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
# etcd 3.4 refuses to start on an architecture it does not support officially (anything but
# amd64 and ppc64le) unless ETCD_UNSUPPORTED_ARCH names it.
ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-}
if [[ -z "$ETCD_UNSUPPORTED_ARCH" ]]; then
    case "$(uname -m)" in
        x86_64 | ppc64le) ;;
        aarch64) ETCD_UNSUPPORTED_ARCH=arm64 ;;
        *) ETCD_UNSUPPORTED_ARCH=$(uname -m) ;;
    esac
fi
if [[ "$cmd" == start ]]; then mkdir -p "$dir"; fi
[[ -d "$dir" ]] || { echo "no such directory: $dir" >&2; exit 1; }
dir=$(cd "$dir" && pwd -P)
names=(e1 e2 e3)
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"

# Whether pid $1 is member $2 of this DIR (see the header).
is_member() {
    local pid=$1 n=$2
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$dir/$n.etcd"
}

start() {
    [[ -x "$etcd" ]] || { echo "etcd not found: apt-get install -y etcd-server" >&2; exit 1; }
    for i in 1 2 3; do
        local n=${names[$((i - 1))]}
        if [[ -f "$dir/$n.pid" ]] && is_member "$(cat "$dir/$n.pid")" "$n"; then
            echo "$n already running (pid $(cat "$dir/$n.pid"))" >&2
            continue
        fi
        # shellcheck disable=SC2086
        ETCD_UNSUPPORTED_ARCH="$ETCD_UNSUPPORTED_ARCH" "$etcd" --name "$n" \
            --data-dir "$dir/$n.etcd" \
            --listen-client-urls "http://127.0.0.1:2379$i" \
            --advertise-client-urls "http://127.0.0.1:2379$i" \
            --listen-peer-urls "http://127.0.0.1:2380$i" \
            --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
            --initial-cluster "$cluster" \
            --initial-cluster-token "auction-bench" \
            --initial-cluster-state new \
            --log-outputs "$dir/$n.log" --logger zap ${ETCD_EXTRA:-} \
            </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/$n.pid"
    done
    # Ready when every member answers its health endpoint.
    for _ in $(seq 1 100); do
        local ok=0
        for i in 1 2 3; do
            local h
            h=$(curl -fsS "http://127.0.0.1:2379$i/health" 2>/dev/null || true)
            if grep -q '"health":"true"' <<<"$h"; then ok=$((ok + 1)); fi
        done
        if [[ $ok -eq 3 ]]; then
            echo "etcd cluster up: 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 (data in $dir)"
            return 0
        fi
        sleep 0.2
    done
    echo "etcd cluster did not become healthy; logs in $dir/e*.log" >&2
    exit 1
}

stop() {
    for n in "${names[@]}"; do
        if [[ -f "$dir/$n.pid" ]]; then
            local pid
            pid=$(cat "$dir/$n.pid")
            if is_member "$pid" "$n"; then
                kill "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do is_member "$pid" "$n" || break; sleep 0.1; done
                if is_member "$pid" "$n"; then kill -9 "$pid" 2>/dev/null || true; fi
            fi
            rm -f "$dir/$n.pid"
        fi
    done
}

leader() {
    for i in 1 2 3; do
        local n=${names[$((i - 1))]}
        local m
        m=$(curl -fsS "http://127.0.0.1:2379$i/metrics" 2>/dev/null || true)
        if grep -q '^etcd_server_is_leader 1' <<<"$m"; then
            local pid
            pid=$(cat "$dir/$n.pid" 2>/dev/null || true)
            if is_member "$pid" "$n"; then
                echo "$pid"
                return 0
            fi
            echo "$n leads but $dir/$n.pid does not name it" >&2
            exit 1
        fi
    done
    exit 1
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    leader) leader ;;
    *) echo "usage: $0 start|stop|leader DIR" >&2; exit 2 ;;
esac
