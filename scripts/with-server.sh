#!/usr/bin/env bash
# with-server.sh CMD [ARGS...]: start bin/valhalla on the embedded default (a
# throwaway data dir, a free port), wait until it is ready, run CMD with
# VALHALLA_URL set to it and VALHALLA_TOKEN to a token with every scope (the
# server's bootstrap token), then stop the server and remove the data dir.
# Exits with CMD's status. Build bin/valhalla first (make build).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${VALHALLA_BIN:-bin/valhalla}
[ -x "$bin" ] || { echo "with-server: $bin not built (run make build)" >&2; exit 2; }

# The local cluster runs as the postgres user when we are root: its data dir
# must be reachable by that user.
data=$(mktemp -d "${TMPDIR:-/tmp}/valhalla-srv-XXXXXX")
chmod 755 "$data"
log="$data/server.log"
# A fresh bootstrap token: vhl_<public id>_<secret>, letters and digits.
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
export VALHALLA_TOKEN="vhl_$(hex 6)_$(hex 16)"
DATABASE_URL= VALHALLA_BOOTSTRAP_TOKEN="$VALHALLA_TOKEN" "$bin" serve --addr 127.0.0.1:0 --data-dir "$data/data" >"$log" 2>&1 &
pid=$!

cleanup() {
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$data"
}
trap cleanup EXIT

addr=""
for _ in $(seq 1 600); do
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$log" | head -n1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { echo "with-server: server exited:" >&2; cat "$log" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "with-server: server did not start:" >&2; cat "$log" >&2; exit 1; }
export VALHALLA_URL="http://$addr"
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "$VALHALLA_URL/system-health/ready" && break
	sleep 0.1
done
echo "with-server: serving on $VALHALLA_URL" >&2

status=0
"$@" || status=$?
if grep -q '"level":"ERROR"' "$log"; then
	echo "with-server: the server logged errors:" >&2
	grep '"level":"ERROR"' "$log" >&2
	[ "$status" -ne 0 ] || status=1
fi
exit "$status"
