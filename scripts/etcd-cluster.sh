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
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop|leader DIR" >&2
    exit 2
fi
etcd=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
names=(e1 e2 e3)
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"

start() {
    [[ -x "$etcd" ]] || { echo "etcd not found: apt-get install -y etcd-server" >&2; exit 1; }
    mkdir -p "$dir"
    for i in 1 2 3; do
        local n=${names[$((i - 1))]}
        if [[ -f "$dir/$n.pid" ]] && kill -0 "$(cat "$dir/$n.pid")" 2>/dev/null; then
            echo "$n already running (pid $(cat "$dir/$n.pid"))" >&2
            continue
        fi
        # shellcheck disable=SC2086
        ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-}" "$etcd" --name "$n" \
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
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
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
            cat "$dir/$n.pid"
            return 0
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
