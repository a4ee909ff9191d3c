#!/usr/bin/env bash
# Checks the dependency direction of the workspace (STYLE.md point 1): the protocol cores are
# pure, so none of them may pull tokio (or any socket or runtime crate) in as a normal
# dependency, and none may depend on the node or the client.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(tokio|tokio-util|mio|socket2|async-std|smol|auction-node|auction-client)$'
status=0
for pkg in auction-proto auction-membership auction-ordering auction-election auction-core auction-replica auction-storage auction-server; do
    deps=$(cargo tree --locked -e normal -p "$pkg" --prefix none --format '{p}' | awk '{print $1}' | sort -u)
    bad=$(grep -E "$forbidden" <<<"$deps" || true)
    if [ -n "$bad" ]; then
        echo "dependency direction violated: $pkg depends on: $(tr '\n' ' ' <<<"$bad")"
        status=1
    else
        echo "ok: $pkg has no IO runtime among its normal dependencies"
    fi
done
exit $status
