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
OUT=$SG_WORK/out
mkdir -p "$OUT"
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
"$SG" run --bridge sgdA,sgdB --pin "$PIN" --records "$OUT/records.jsonl" 2> "$OUT/swarmguard.log" &
SGPID=$!
SG_PIDS+=($SGPID)
for i in $(seq 50); do grep -q running "$OUT/swarmguard.log" 2>/dev/null && break; sleep 0.1; done
grep -q running "$OUT/swarmguard.log" || { cat "$OUT/swarmguard.log" >&2; exit 1; }
sed 's/^/  /' "$OUT/swarmguard.log"
echo "demo: replaying ${#CAPS[@]} bundled captures from $P-gen through the bridge"
in_ns gen "$SG" bench replay --iface eth0 --rate 40000 "${CAPS[@]}" | sed 's/^/  /'
sleep 1
echo "demo: bans (pinned map):"
"$SG" bans list --pin "$PIN" | awk 'NR <= 20 { print "  " $0 }'
kill -INT $SGPID
wait $SGPID || true
echo "demo: decisions by action and label:"
grep -o '"label":"[a-z0-9]*"\|"action":"[a-z+]*"' "$OUT/records.jsonl" | paste - - | sort | uniq -c | sed 's/^/  /'
echo "demo: some p2p decisions (why):"
grep -m 5 '"label":"p2p"' "$OUT/records.jsonl" | sed -E 's/"reasons":\[([^]]{0,160})[^]]*\]/"reasons":[\1...]/' | sed 's/^/  /'
tail -1 "$OUT/swarmguard.log" | sed 's/^/  /'
echo "demo: removing namespaces, links, XDP programs and pins"
