#!/usr/bin/env bash
# A real encrypted BitTorrent swarm through a swarmguard bridge (issue 3's test).
#
#   bench/bridge/swarm.sh [OUTDIR]      (root; a few minutes; exits non-zero on failure)
#   SG_TUNNEL=vxlan bench/bridge/swarm.sh   the same inside a VXLAN overlay (VNI 78, 192.168.78.0/24,
#                                           same last octets) whose underlay crosses the bridge
#
# left  (namespace sgb-l, Linux bridge brl): srv 10.77.2.1 (opentracker, nginx HTTPS, sshd),
#        bt1 10.77.2.11 (seeder), bt2 10.77.2.12
# right (namespace sgb-r, Linux bridge brr): bt3 10.77.2.13, bt4 10.77.2.14 (leechers), web 10.77.2.50
# swarmguard run --bridge sgbA,sgbB joins the two sides; the right side is "local" (--local), so
# the remote peers of p2p flows are the left peers. transmission-daemon: encryption required,
# DHT/LSD/PEX/uTP off, so the peers' traffic is MSE over TCP; announces go to opentracker.
# Meanwhile web downloads a file over HTTPS from nginx and by scp from sshd, across the bridge.
# Checks: the left peers are banned within 10 s of their first peer flow; the leechers stop short
# of 100 %; both downloads are byte-identical; srv and web are not banned. Records and logs go to
# OUTDIR (default: a temporary directory, removed). Everything is removed on exit.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "swarm.sh: needs root (network namespaces, XDP)" >&2; exit 2; }
for b in ip bridge transmission-daemon transmission-remote transmission-show mktorrent opentracker nginx sshd scp curl openssl ethtool sha256sum; do
  command -v "$b" >/dev/null || { echo "swarm.sh: $b missing (bash bench/deps.sh installs it)" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
SG=${SG:-$HERE/../../bin/swarmguard}
[ -x "$SG" ] || { echo "swarm.sh: $SG missing: run make build" >&2; exit 2; }
P=sgb
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
OUT=${1:-$SG_WORK/out}
mkdir -p "$OUT"
PIN=/sys/fs/bpf/sgb$$
cleanup() { sg_cleanup; rm -rf "$PIN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for side in l r; do
  mkns "$side"
  in_ns "$side" ip link add "br$side" type bridge
  in_ns "$side" ip link set "br$side" up
done
host srv 10.77.2.1 l brl
host bt1 10.77.2.11 l brl
host bt2 10.77.2.12 l brl
host bt3 10.77.2.13 r brr
host bt4 10.77.2.14 r brr
host web 10.77.2.50 r brr
# NET is where the swarm and the downloads run: the hosts' own addresses, or
# a VXLAN overlay over them (flooding to every other VTEP, learning MACs).
NET=10.77.2
if [ "${SG_TUNNEL:-}" = vxlan ]; then
  NET=192.168.78
  for spec in "srv 1" "bt1 11" "bt2 12" "bt3 13" "bt4 14" "web 50"; do
    set -- $spec
    in_ns "$1" ip link add vx0 type vxlan id 78 dstport 4789 local "10.77.2.$2" dev eth0
    for o in 1 11 12 13 14 50; do
      [ "$o" = "$2" ] || in_ns "$1" bridge fdb append 00:00:00:00:00:00 dev vx0 dst "10.77.2.$o"
    done
    in_ns "$1" ip addr add "$NET.$2/24" dev vx0
    in_ns "$1" ip link set vx0 up
    in_ns "$1" ethtool -K vx0 tso off gso off gro off tx off >/dev/null 2>&1 || true
  done
fi
# The bridge's two ports, in this namespace; their peers are uplinks of the side bridges.
for pair in "A l" "B r"; do
  set -- $pair
  ip link add "sgb$1" type veth peer name uplink netns "$P-$2"
  SG_LINKS+=("sgb$1")
  in_ns "$2" ip link set uplink master "br$2" up
  # A devmap redirect into a veth needs NAPI on its peer.
  in_ns "$2" ethtool -K uplink gro on tso off gso off tx off >/dev/null 2>&1 || true
  ethtool -K "sgb$1" tso off gso off tx off >/dev/null 2>&1 || true
  ip link set "sgb$1" up
done

web_servers srv "$NET.1"
# The tracker host is allow-listed (as an operator would its own tracker): otherwise the announces
# are p2p, dropped, and the peers never meet across the bridge to be caught.
# --config /dev/null: the defaults, whatever /etc/swarmguard holds; no metrics
# port or control socket to collide with another test's run.
"$SG" run --config /dev/null --metrics "" --status-socket "" --bridge sgbA,sgbB --pin "$PIN" --local "$NET.13/32,$NET.14/32,$NET.50/32" --allow-net "$NET.1/32" \
  --records "$OUT/records.jsonl" 2> "$OUT/swarmguard.log" &
SGPID=$!
SG_PIDS+=($SGPID)
for i in $(seq 50); do grep -q running "$OUT/swarmguard.log" 2>/dev/null && break; sleep 0.1; done
grep -q running "$OUT/swarmguard.log" || { echo "swarm.sh: swarmguard did not start:" >&2; cat "$OUT/swarmguard.log" >&2; exit 1; }

s=$SG_WORK/swarm
mkdir -p "$s" && chmod 755 "$s"
head -c 8000000 /dev/urandom > "$s/payload.bin"
mktorrent -l 16 -a "http://$NET.1:6969/announce" -o "$s/t.torrent" "$s/payload.bin" >/dev/null
opentracker_for srv "$NET.1" "$s/t.torrent" "$s/ot"
i=0
for peer in bt1 bt2 bt3 bt4; do
  i=$((i+1))
  d=$s/$peer
  mkdir -p "$d/data" "$d/watch"
  peer_settings "$d" 2 false $((40000 + i)) false
  [ "$peer" = bt1 ] && cp "$s/payload.bin" "$d/data/"
  bg "$peer" transmission-daemon -f -g "$d" -e "$d/log"
done
sleep 2
for peer in bt1 bt2 bt3 bt4; do cp "$s/t.torrent" "$s/$peer/watch/"; done
sleep 2
in_ns bt1 transmission-remote 127.0.0.1:9091 -t all -v >/dev/null 2>&1 || true

# Normal traffic across the bridge, at the same time.
sleep 5
in_ns web curl -sk --max-time 60 -o "$OUT/https.bin" "https://$NET.1/file.bin" || true
in_ns web scp -q -i "$SG_SSHKEY" "${SSHOPT[@]}" "root@$NET.1:$SG_FILE" "$OUT/scp.bin" || true
sleep 30

fail=0
want=$(sha256sum < "$SG_FILE")
for f in https scp; do
  if [ "$(sha256sum < "$OUT/$f.bin" 2>/dev/null)" = "$want" ]; then echo "ok   $f download through the bridge is byte-identical"
  else echo "FAIL $f download through the bridge differs or is missing"; fail=1; fi
done
bans=$("$SG" bans list --pin "$PIN")
echo "bans:"; echo "$bans" | sed 's/^/     /'
for ip in "$NET.1" "$NET.50"; do
  if echo "$bans" | grep -q "^$ip[[:space:]]"; then echo "FAIL $ip (servers / normal client) banned"; fail=1; else echo "ok   $ip not banned"; fi
done
for peer in bt3 bt4; do
  p=$(percent "$peer")
  if [ "$p" = "100%" ]; then echo "FAIL $peer finished its download ($p) through the bridge"; fail=1; else echo "ok   $peer stopped at $p"; fi
done
# Every remote peer with a p2p flow across the bridge banned within 10 s of its first one
# (and at least one banned), from the decision records.
"$SG" bench banlatency "$OUT/records.jsonl" "$NET.11,$NET.12" || fail=1
kill -INT $SGPID 2>/dev/null || true
wait $SGPID 2>/dev/null || true
cat "$OUT/swarmguard.log"
exit $fail
