#!/usr/bin/env bash
# make demo: swarmguard as an inline AF_XDP bridge between two network
# namespaces this script creates (sgd-gen -- [sgdA swarmguard sgdB] -- sgd-sink),
# with bundled captures replayed through it from sgd-gen; prints the decisions
# and bans, then removes everything (namespaces, links, XDP programs, pins).
# Needs root; without it, it shows the offline classification instead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SG=${SG:-$ROOT/bin/swarmguard}
CAPS=("$ROOT/testdata/ndpi/pcap/bittorrent.pcap" "$ROOT/testdata/captures/hidden.pcap"
      "$ROOT/testdata/captures/encrypted.pcap" "$ROOT/testdata/ndpi/pcap/443-curl.pcap"
      "$ROOT/testdata/ndpi/pcap/ssh.pcap" "$ROOT/testdata/ndpi/pcap/ethereum.pcap")
if [ "$(id -u)" != 0 ]; then
  echo "demo: the bridge demo needs root (namespaces, XDP); offline classification instead:" >&2
  exec "$SG" classify --quiet --labels "$ROOT/testdata/ndpi/labels.jsonl,$ROOT/testdata/captures/labels.jsonl" \
    "$ROOT"/testdata/ndpi/pcap/* "$ROOT"/testdata/captures/*.pcap
fi
P=sgd
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
PIN=/sys/fs/bpf/sgd$$
# What an operator keeps: the configuration, the decision log and the audit
# capture stay in bench/out/demo after the demo; the rest is removed.
OUT=$ROOT/bench/out/demo
rm -rf "$OUT"
mkdir -p "$OUT"
SOCK=$SG_WORK/swarmguard.sock
cleanup() { sg_cleanup; rm -rf "$PIN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: creating namespaces $P-gen and $P-sink, and the bridge ports sgdA, sgdB"
mkns gen
mkns sink
for pair in "A gen" "B sink"; do
  set -- $pair
  ip link add "sgd$1" type veth peer name eth0 netns "$P-$2"
  SG_LINKS+=("sgd$1")
  in_ns "$2" ethtool -K eth0 gro on tx off >/dev/null 2>&1 || true
  in_ns "$2" ip link set eth0 up
  ip link set "sgd$1" up
done
# The configuration file, as `config default` documents it, with the demo's
# ports, paths and a metrics port the kernel picks.
"$SG" config default --bridge sgdA,sgdB --pin "$PIN" --records "$OUT/eve.json" --log-max-size 256KiB \
  --metrics 127.0.0.1:0 --status-socket "$SOCK" --audit-dir "$OUT/audit" > "$OUT/swarmguard.yaml"
"$SG" run --config "$OUT/swarmguard.yaml" 2> "$OUT/swarmguard.log" &
SGPID=$!
SG_PIDS+=($SGPID)
for i in $(seq 50); do grep -q running "$OUT/swarmguard.log" 2>/dev/null && break; sleep 0.1; done
grep -q running "$OUT/swarmguard.log" || { cat "$OUT/swarmguard.log" >&2; exit 1; }
sed 's/^/  /' "$OUT/swarmguard.log"
METRICS=$(grep -o 'http://[0-9.:]*/metrics' "$OUT/swarmguard.log" | head -1)
echo "demo: replaying ${#CAPS[@]} bundled captures from $P-gen through the bridge"
in_ns gen "$SG" bench replay --iface eth0 --rate 40000 "${CAPS[@]}" > "$OUT/replay.txt" &
REPLAY=$!
SG_PIDS+=($REPLAY)
sleep 2
echo "demo: swarmguard status, mid-run:"
"$SG" status --socket "$SOCK" | sed 's/^/  /'
wait $REPLAY
sed 's/^/  /' "$OUT/replay.txt"
sleep 1
echo "demo: bans, and why:"
"$SG" bans list --pin "$PIN" --socket "$SOCK" | awk 'NR <= 12 { print "  " $0 }'
echo "demo: a few metrics from $METRICS:"
curl -s "$METRICS" | grep -E '^swarmguard_(decisions_total|bans_active|kernel_packets_total\{action="(rx|to_xsk|bypass_forward|ban_drop)"\}|fail_open )' | sed 's/^/  /'
kill -INT $SGPID
wait $SGPID || true
echo "demo: decisions by action and label:"
grep -h '"event_type":"flow"' "$OUT"/eve.json* | grep -o '"label":"[a-z0-9]*"\|"action":"[a-z+]*"' | paste - - | sort | uniq -c | sed 's/^/  /'
echo "demo: some p2p decisions (why):"
grep -h -m 5 '"label":"p2p"' "$OUT/eve.json" | sed -E 's/"reasons":\[([^]]{0,160})[^]]*\]/"reasons":[\1...]/' | sed 's/^/  /'
tail -1 "$OUT/swarmguard.log" | sed 's/^/  /'
echo "demo: removing namespaces, links, XDP programs and pins"
echo "demo: kept in $OUT:"
echo "  configuration   $OUT/swarmguard.yaml"
echo "  decision log    $OUT/eve.json ($(cat "$OUT"/eve.json* | wc -l) events, rotated at 256 KiB: $(ls "$OUT" | grep -c '^eve.json') files)"
echo "  audit capture   $OUT/audit/audit.pcapng ($(ls -1 "$OUT/audit" | wc -l) files; open in Wireshark, the decision is the first packet's comment)"
echo "  metrics were at $METRICS (Prometheus text format; Grafana dashboard: contrib/grafana-swarmguard.json)"
