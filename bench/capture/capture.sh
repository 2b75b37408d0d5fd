#!/usr/bin/env bash
# Record real-client captures in network namespaces for training and tests.
#
#   bench/capture/capture.sh OUTDIR [SCENARIO...]     (root; default: all scenarios)
#
# Scenarios (each one pcap, OUTDIR/<scenario>.pcap, snaplen 256):
#   plain      transmission-daemon, encryption tolerated (plaintext), opentracker HTTP+UDP, DHT/LSD/uTP/PEX on
#   encrypted  transmission-daemon, encryption required (MSE/PE), opentracker HTTP+UDP, DHT/LSD/uTP/PEX on
#   hidden     encryption required, tracker reachable only over HTTPS, DHT/LSD/uTP/PEX off, random peer ports
#   hidden-lt  as hidden, with qbittorrent-nox (libtorrent: random PadC/PadD, handshake after the MSE
#              exchange) instead of transmission-daemon
# In every scenario the BitTorrent hosts also fetch HTTPS from nginx, scp from sshd and resolve names
# from dnsmasq, and a normal host runs curl, ssh and iperf3: those flows must stay normal. In plain and
# encrypted a fifth peer announces and vanishes, so the others' attempts to reach it go unanswered.
#
# Topology (bench/capture/truth.go knows it): namespaces sgc-sw (bridge br0, where tcpdump listens),
# sgc-srv 10.77.0.1 (opentracker, nginx, sshd, dnsmasq, iperf3), sgc-htrk 10.77.0.2 (HTTPS tracker),
# sgc-bt1..5 10.77.0.11-15 (transmission-daemon; bt1 seeds), sgc-lt1..4 10.77.0.21-24 (qbittorrent-nox;
# lt1 seeds), sgc-web 10.77.0.50 (normal client).
# No default routes. Everything is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
OUT=${1:?usage: capture.sh OUTDIR [plain|encrypted|hidden ...]}
shift
SCENARIOS=${*:-plain encrypted hidden hidden-lt}
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (network namespaces)" >&2; exit 2; }
for b in ip tcpdump transmission-daemon transmission-remote transmission-show qbittorrent-nox mktorrent opentracker nginx sshd dnsmasq iperf3 curl dig scp openssl ethtool cmp; do
  command -v "$b" >/dev/null || { echo "capture.sh: $b missing (make captures installs it)" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
SG=${SG:-$HERE/../../bin/swarmguard}
[ -x "$SG" ] || { echo "capture.sh: $SG missing: run make build" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
P=sgc
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
trap sg_cleanup EXIT
trap 'exit 130' INT TERM

mkns sw
in_ns sw ip link add br0 type bridge
in_ns sw ip link set br0 up
for spec in "srv 10.77.0.1" "htrk 10.77.0.2" "bt1 10.77.0.11" "bt2 10.77.0.12" "bt3 10.77.0.13" "bt4 10.77.0.14" "bt5 10.77.0.15" \
    "lt1 10.77.0.21" "lt2 10.77.0.22" "lt3 10.77.0.23" "lt4 10.77.0.24" "web 10.77.0.50"; do
  set -- $spec
  host "$1" "$2" sw br0
done
web_servers srv 10.77.0.1
bg htrk "$SG" bench tracker --tls --listen 10.77.0.2:443
sleep 1

# normal_traffic NS: what a person on that host does besides BitTorrent.
normal_traffic() {
  local ns=$1
  for i in 1 2 3; do
    in_ns "$ns" dig +short +time=1 +tries=1 @10.77.0.1 www.test >/dev/null || true
    in_ns "$ns" curl -sk --max-time 20 -o /dev/null https://10.77.0.1/file.bin || true
    in_ns "$ns" scp -q -i "$SG_SSHKEY" "${SSHOPT[@]}" root@10.77.0.1:"$SG_FILE" "$SG_WORK/scp.$ns" || true
    sleep 3
  done
}

# lt_scenario: the hidden swarm with qbittorrent-nox (libtorrent) peers.
lt_scenario() {
  echo "== hidden-lt" >&2
  local s=$SG_WORK/hidden-lt
  mkdir -p "$s" && chmod 755 "$s"
  head -c 6000000 /dev/urandom > "$s/payload-lt.bin"
  mktorrent -l 16 -a https://10.77.0.2/announce -o "$s/t.torrent" "$s/payload-lt.bin" >/dev/null
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/hidden-lt.pcap" 2>/dev/null
  local tcpdump_pid=${SG_PIDS[-1]}
  sleep 1
  for i in 1 2 3 4; do
    local d=$s/lt$i
    mkdir -p "$d/qBittorrent/config" "$d/data"
    cat > "$d/qBittorrent/config/qBittorrent.conf" <<QBT
[LegalNotice]
Accepted=true

[BitTorrent]
Session\Encryption=1
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\BTProtocol=TCP
Session\Port=$((30000 + RANDOM % 20000))
Session\ValidateHTTPSTrackerCertificate=false
Session\GlobalUPSpeedLimit=400
Session\AnonymousModeEnabled=false
QBT
    [ $i = 1 ] && cp "$s/payload-lt.bin" "$d/data/"
    bg "lt$i" qbittorrent-nox --profile="$d" --save-path="$d/data" "$s/t.torrent"
  done
  normal_traffic lt2 & local n1=$!
  local deadline=$((SECONDS+90)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for i in 2 3 4; do cmp -s "$s/payload-lt.bin" "$s/lt$i/data/payload-lt.bin" && done=$((done+1)); done
    [ $done = 3 ] && break
    sleep 2
  done
  wait $n1 || true
  echo "   leechers complete: $done/3" >&2
  sleep 2
  kill "$tcpdump_pid" 2>/dev/null || true
  sleep 1
  [ $done = 3 ] || { echo "capture.sh: hidden-lt: swarm did not complete" >&2; return 1; }
}

scenario() {
  local name=$1 enc discovery announce ports
  [ "$name" = hidden-lt ] && { lt_scenario; return; }
  case $name in
    plain)     enc=0; discovery=true;  announce="-a http://10.77.0.1:6969/announce -a udp://10.77.0.1:6969/announce"; ports="51413 51413 51413 51413";;
    encrypted) enc=2; discovery=true;  announce="-a http://10.77.0.1:6969/announce -a udp://10.77.0.1:6969/announce"; ports="6881 6881 6881 6881";;
    hidden)    enc=2; discovery=false; announce="-a https://10.77.0.2/announce"; ports="$((20000+RANDOM%20000)) $((20000+RANDOM%20000)) $((20000+RANDOM%20000)) $((20000+RANDOM%20000))";;
    *) echo "capture.sh: unknown scenario $name" >&2; exit 2;;
  esac
  echo "== $name" >&2
  local s=$SG_WORK/$name
  mkdir -p "$s" && chmod 755 "$s"
  head -c 6000000 /dev/urandom > "$s/payload-$name.bin"
  mktorrent -l 16 $announce -o "$s/t.torrent" "$s/payload-$name.bin" >/dev/null
  SG_OT_PID=""
  [ "$name" != hidden ] && opentracker_for srv 10.77.0.1 "$s/t.torrent" "$s/ot"
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/$name.pcap" 2>/dev/null
  local tcpdump_pid=${SG_PIDS[-1]}
  sleep 1
  # A peer that announces and then vanishes (as peers leaving a swarm do).
  if [ "$name" != hidden ]; then
    local g=$s/bt5
    mkdir -p "$g/data" "$g/watch"
    in_ns bt5 ip addr replace 10.77.0.15/24 dev eth0
    peer_settings "$g" "$enc" false 7777
    bg bt5 transmission-daemon -f -g "$g" -e "$g/log"
    local ghost=${SG_PIDS[-1]}
    sleep 2
    cp "$s/t.torrent" "$g/watch/"
    sleep 6
    kill -9 "$ghost" 2>/dev/null || true
    # Gone without a word: the others still reach its MAC (a permanent
    # neighbour entry), but it no longer owns the address and drops what
    # arrives, so SYNs and uTP SYNs to it are never answered.
    local mac
    mac=$(in_ns bt5 cat /sys/class/net/eth0/address)
    in_ns bt5 ip addr flush dev eth0
    for i in 1 2 3 4; do in_ns "bt$i" ip neigh replace 10.77.0.15 lladdr "$mac" dev eth0 nud permanent; done
  fi
  local i=0
  for port in $ports; do
    i=$((i+1))
    local d=$s/bt$i
    mkdir -p "$d/data" "$d/watch"
    peer_settings "$d" "$enc" "$discovery" "$port"
    [ $i = 1 ] && cp "$s/payload-$name.bin" "$d/data/"
    bg "bt$i" env TR_CURL_SSL_NO_VERIFY=1 transmission-daemon -f -g "$d" -e "$d/log"
  done
  sleep 2
  for i in 1 2 3 4; do cp "$s/t.torrent" "$s/bt$i/watch/"; done
  sleep 3
  in_ns bt1 transmission-remote 127.0.0.1:9091 -t all -v >/dev/null 2>&1 || true
  normal_traffic bt2 & local n1=$!
  normal_traffic web & local n2=$!
  in_ns web iperf3 -c 10.77.0.1 -t 3 -b 8M -l 1200 >/dev/null 2>&1 || true
  in_ns web ssh -i "$SG_SSHKEY" "${SSHOPT[@]}" root@10.77.0.1 'head -c 200000 /dev/zero' >/dev/null 2>&1 || true
  local deadline=$((SECONDS+90)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for i in 2 3 4; do [ "$(percent "bt$i")" = "100%" ] && done=$((done+1)); done
    [ $done = 3 ] && break
    sleep 2
  done
  wait $n1 $n2 || true
  echo "   leechers complete: $done/3" >&2
  sleep 3
  for i in 1 2 3 4; do in_ns "bt$i" transmission-remote 127.0.0.1:9091 --exit >/dev/null 2>&1 || true; done
  sleep 2
  kill "$tcpdump_pid" $SG_OT_PID 2>/dev/null || true
  sleep 1
  [ $done = 3 ] || { echo "capture.sh: $name: swarm did not complete (see $s/bt*/log)" >&2; tail -5 "$s"/bt*/log >&2; return 1; }
}

for sc in $SCENARIOS; do scenario "$sc"; done
ls -l "$OUT" >&2
