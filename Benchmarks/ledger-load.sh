#!/usr/bin/env bash
# The PostgreSQL ledger under load, in this one script against one server it starts (initdb/pg_ctl
# on a free loopback port, removed at the end):
#   1. one worker process vs two on the same synthetic stage whose items each take WORK_MS of CPU:
#      items/s and the ratio (on a 2-core machine ≥ 1.8× means the ledger is not the bottleneck);
#   2. 16 worker processes on items that take no time: what the ledger itself costs per item
#      (claim + commit latency p50/p99, items/s).
#
#   Benchmarks/ledger-load.sh [WORK_MS (default 50)] [ITEMS (default 400)]
set -euo pipefail
cd "$(dirname "$0")/.."
work_ms="${1:-50}"
items="${2:-400}"
swift build -c release --product LedgerLoad >&2
load="$(swift build -c release --show-bin-path)/LedgerLoad"

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/ledger-load-XXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
as_postgres "$bin/initdb" -D "$dir/data" -U bench -A trust --no-sync -E UTF8 --locale=C >/dev/null
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
trap 'as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; rm -rf "$dir"' EXIT

# run WORKERS ITEMS WORK_MS: prints "items/s p50_ms p99_ms"
run() {
    local db="b$RANDOM$RANDOM"
    psql -q -h 127.0.0.1 -p "$port" -U bench postgres -c "CREATE DATABASE $db"
    local url="postgresql://bench@127.0.0.1:$port/$db"
    "$load" setup --db "$url" --items "$2" >/dev/null
    local start; start=$(date +%s.%N)
    for _ in $(seq "$1"); do "$load" worker --db "$url" --work-ms "$3" > "$dir/w$RANDOM$RANDOM.json" & done
    wait
    local end; end=$(date +%s.%N)
    python3 - "$dir" "$2" "$start" "$end" <<'PY'
import glob, json, sys
folder, items, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
committed, latencies = [], []
for path in glob.glob(folder + "/w*.json"):
    d = json.load(open(path)); committed += d["committed"]; latencies += d["latencies"]
assert len(committed) == items and len(set(committed)) == items, f"{len(committed)} committed, {len(set(committed))} distinct"
latencies.sort()
print(f"{items / (end - start):.1f} {latencies[len(latencies) // 2] * 1000:.2f} {latencies[int(len(latencies) * 0.99)] * 1000:.2f}")
PY
    rm -f "$dir"/w*.json
}
read -r one _ _ <<<"$(run 1 "$items" "$work_ms")"
read -r two _ _ <<<"$(run 2 "$items" "$work_ms")"
read -r many p50 p99 <<<"$(run 16 2000 0)"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), $(nproc) cores; items of $work_ms ms CPU each:"
printf '  1 worker:  %7.1f items/s\n  2 workers: %7.1f items/s  (%.2fx)\n' "$one" "$two" "$(echo "$two / $one" | bc -l)"
printf '16 workers, items of no work: %.0f items/s; claim + commit p50 %.2f ms, p99 %.2f ms per item\n' "$many" "$p50" "$p99"
