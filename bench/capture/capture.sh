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
#   hidden-mix as hidden, one swarm of six different clients: transmission-daemon (seeds), qbittorrent-nox,
#              rtorrent, aria2c, deluged and libtorrent through python3-libtorrent (ltpeer.py)
#   vxlan-swarm transmission-daemon peers (MSE required, HTTPS tracker) and an HTTPS download, all inside
#              a VXLAN overlay (VNI 77, 192.168.77.0/24) between namespaces, recorded on the underlay
#   busy       no BitTorrent at all: hosts that behave like peers without being BitTorrent. A TURN relay
#              (coturn) carrying turnutils_uclient sessions to a peer, a recursive resolver (unbound)
#              hammered by clients, a crawler fetching from five web servers, an SRTP-like voice mesh
#              and an encrypted video mesh between six hosts on high ports, encrypted game and
#              interactive UDP to a server (bench udpmesh), many ssh sessions to one bastion
# In every scenario the BitTorrent hosts also fetch HTTPS from nginx, scp from sshd and resolve names
# from dnsmasq, and a normal host runs curl, ssh and iperf3: those flows must stay normal. In plain and
# encrypted a fifth peer announces and vanishes, so the others' attempts to reach it go unanswered.
#
# Topology (bench/capture/truth.go knows it): namespaces sgc-sw (bridge br0, where tcpdump listens),
# sgc-srv 10.77.0.1 (opentracker, nginx, sshd, dnsmasq, iperf3), sgc-htrk 10.77.0.2 (HTTPS tracker),
# sgc-bt1..5 10.77.0.11-15 (transmission-daemon; bt1 seeds), sgc-lt1..4 10.77.0.21-24 (qbittorrent-nox;
# lt1 seeds), sgc-mx1..6 10.77.0.31-36 (the mixed swarm, in the order above), sgc-web 10.77.0.50
# (normal client); for busy: sgc-turn 10.77.0.3 (coturn), sgc-tpeer 10.77.0.4 (turnutils_peer), sgc-res
# 10.77.0.5 (unbound), sgc-game 10.77.0.6, sgc-crawl 10.77.0.51, sgc-c1..6 10.77.0.61-66 (clients),
# sgc-w1..4 10.77.0.71-74 (nginx).
# No default routes. Everything is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
OUT=${1:?usage: capture.sh OUTDIR [plain|encrypted|hidden ...]}
shift
SCENARIOS=${*:-plain encrypted hidden hidden-lt hidden-mix vxlan-swarm busy}
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (network namespaces)" >&2; exit 2; }
for b in ip bridge tcpdump transmission-daemon transmission-remote transmission-show qbittorrent-nox mktorrent opentracker nginx sshd dnsmasq iperf3 curl dig scp openssl ethtool cmp \
    rtorrent aria2c deluged deluge-console /usr/bin/python3 turnserver turnutils_uclient turnutils_peer unbound; do
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
    "lt1 10.77.0.21" "lt2 10.77.0.22" "lt3 10.77.0.23" "lt4 10.77.0.24" "web 10.77.0.50" \
    "mx1 10.77.0.31" "mx2 10.77.0.32" "mx3 10.77.0.33" "mx4 10.77.0.34" "mx5 10.77.0.35" "mx6 10.77.0.36" \
    "turn 10.77.0.3" "tpeer 10.77.0.4" "res 10.77.0.5" "game 10.77.0.6" "crawl 10.77.0.51" \
    "c1 10.77.0.61" "c2 10.77.0.62" "c3 10.77.0.63" "c4 10.77.0.64" "c5 10.77.0.65" "c6 10.77.0.66" \
    "w1 10.77.0.71" "w2 10.77.0.72" "w3 10.77.0.73" "w4 10.77.0.74"; do
  set -- $spec
  host "$1" "$2" sw br0
done
web_servers srv 10.77.0.1
bg htrk "$SG" bench tracker --tls --listen 10.77.0.2:443 --cert-out "$SG_WORK/tracker.pem"
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
    qbt_profile "$d" $((30000 + RANDOM % 20000))
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

# qbt_profile DIR PORT: a qbittorrent-nox profile with encryption required
# and no DHT, LSD, PEX or uTP.
qbt_profile() {
  mkdir -p "$1/qBittorrent/config" "$1/data"
  cat > "$1/qBittorrent/config/qBittorrent.conf" <<QBT
[LegalNotice]
Accepted=true

[BitTorrent]
Session\Encryption=1
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\BTProtocol=TCP
Session\Port=$2
Session\ValidateHTTPSTrackerCertificate=false
Session\GlobalUPSpeedLimit=400
Session\AnonymousModeEnabled=false
QBT
}

# mix_scenario: one hidden swarm of six different clients.
mix_scenario() {
  echo "== hidden-mix" >&2
  local s=$SG_WORK/hidden-mix port
  mkdir -p "$s" && chmod 755 "$s"
  head -c 4000000 /dev/urandom > "$s/payload-mix.bin"
  mktorrent -l 16 -a https://10.77.0.2/announce -o "$s/t.torrent" "$s/payload-mix.bin" >/dev/null
  for i in 1 2 3 4 5 6; do mkdir -p "$s/mx$i/data" "$s/mx$i/watch"; done
  cp "$s/payload-mix.bin" "$s/mx1/data/"
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/hidden-mix.pcap" 2>/dev/null
  local tcpdump_pid=${SG_PIDS[-1]}
  sleep 1
  # mx1: transmission-daemon, the seed.
  peer_settings "$s/mx1" 2 false $((20000 + RANDOM % 20000))
  local first=${#SG_PIDS[@]}
  bg mx1 env TR_CURL_SSL_NO_VERIFY=1 transmission-daemon -f -g "$s/mx1" -e "$s/mx1/log"
  # mx2: qbittorrent-nox (libtorrent-rasterbar).
  qbt_profile "$s/mx2" $((20000 + RANDOM % 20000))
  bg mx2 qbittorrent-nox --profile="$s/mx2" --save-path="$s/mx2/data" "$s/t.torrent"
  # mx3: rtorrent (libtorrent by rakshasa), as a daemon.
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$s/mx3/session"
  cat > "$s/mx3/rtorrent.rc" <<RT
directory.default.set = $s/mx3/data
session.path.set = $s/mx3/session
network.bind_address.set = 10.77.0.33
network.port_range.set = $port-$port
network.port_random.set = no
protocol.encryption.set = allow_incoming,try_outgoing,require,require_RC4
dht.mode.set = disable
protocol.pex.set = no
trackers.use_udp.set = no
network.http.ssl_verify_peer.set = 0
network.http.ssl_verify_host.set = 0
throttle.global_up.max_rate.set_kb = 400
system.daemon.set = true
RT
  bg mx3 rtorrent -n -o "import=$s/mx3/rtorrent.rc" "$s/t.torrent"
  # mx4: aria2c.
  bg mx4 aria2c --dir="$s/mx4/data" --listen-port=$((20000 + RANDOM % 20000)) --bt-require-crypto=true \
    --bt-min-crypto-level=arc4 --enable-dht=false --enable-dht6=false --enable-peer-exchange=false \
    --bt-enable-lpd=false --check-certificate=false --seed-ratio=0.0 --max-overall-upload-limit=400K \
    --file-allocation=none --summary-interval=0 --console-log-level=warn --async-dns=false "$s/t.torrent"
  # mx5: deluged (libtorrent-rasterbar), verifying the tracker with its certificate.
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$s/mx5/conf"
  echo "localclient:sgpass:10" > "$s/mx5/conf/auth"
  cat > "$s/mx5/conf/core.conf" <<DL
{"file": 1, "format": 1}{
  "listen_ports": [$port, $port], "random_port": false, "listen_interface": "10.77.0.35",
  "dht": false, "lsd": false, "upnp": false, "natpmp": false, "utpex": false,
  "enc_in_policy": 0, "enc_out_policy": 0, "enc_level": 1,
  "max_upload_speed": 400.0, "download_location": "$s/mx5/data", "move_completed": false,
  "add_paused": false, "pre_allocate_storage": false, "enabled_plugins": [], "allow_remote": false,
  "new_release_check": false, "send_info": false, "daemon_port": 58846
}
DL
  bg mx5 env SSL_CERT_FILE="$SG_WORK/tracker.pem" deluged -d -c "$s/mx5/conf" -L warning -l "$s/mx5/log"
  # mx6: libtorrent-rasterbar through python3-libtorrent.
  bg mx6 /usr/bin/python3 "$HERE/ltpeer.py" 10.77.0.36 $((20000 + RANDOM % 20000)) "$s/t.torrent" "$s/mx6/data"
  sleep 4
  in_ns mx1 transmission-remote 127.0.0.1:9091 -a "$s/t.torrent" >/dev/null || true
  in_ns mx5 deluge-console -c "$s/mx5/conf" "add -p $s/mx5/data $s/t.torrent" >/dev/null 2>&1 || true
  normal_traffic mx2 & local n1=$!
  normal_traffic mx4 & local n2=$!
  local deadline=$((SECONDS+150)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for i in 2 3 4 5 6; do cmp -s "$s/payload-mix.bin" "$s/mx$i/data/payload-mix.bin" && done=$((done+1)); done
    [ $done = 5 ] && break
    sleep 2
  done
  wait $n1 $n2 || true
  echo "   leechers complete: $done/5" >&2
  sleep 3
  kill "$tcpdump_pid" 2>/dev/null || true
  # The clients go with their capture: the next scenario has none.
  kill "${SG_PIDS[@]:$first:6}" 2>/dev/null || true
  sleep 1
  if [ $done != 5 ]; then
    for i in 2 3 4 5 6; do cmp -s "$s/payload-mix.bin" "$s/mx$i/data/payload-mix.bin" || echo "   mx$i incomplete" >&2; done
    tail -5 "$s/mx1/log" "$s/mx5/log" >&2 2>/dev/null
    echo "capture.sh: hidden-mix: swarm did not complete" >&2
    return 1
  fi
}

# vxlan_scenario: a swarm and a web download inside a VXLAN overlay, recorded
# on the underlay bridge. Each overlay host has an underlay address on br0
# and a vx0 (VNI 77) flooding unknown destinations to the others (head-end
# replication) and learning where each MAC is, so a frame crosses once.
vxlan_scenario() {
  echo "== vxlan-swarm" >&2
  local s=$SG_WORK/vxlan-swarm i
  mkdir -p "$s" && chmod 755 "$s"
  local names=(vxs vxt vx1 vx2 vx3 vxw) under=(10.77.0.81 10.77.0.82 10.77.0.83 10.77.0.84 10.77.0.85 10.77.0.86)
  local over=(192.168.77.1 192.168.77.2 192.168.77.11 192.168.77.12 192.168.77.13 192.168.77.50)
  for i in "${!names[@]}"; do
    host "${names[$i]}" "${under[$i]}" sw br0
    in_ns "${names[$i]}" ip link add vx0 type vxlan id 77 dstport 4789 local "${under[$i]}" dev eth0
    for u in "${under[@]}"; do
      [ "$u" = "${under[$i]}" ] || in_ns "${names[$i]}" bridge fdb append 00:00:00:00:00:00 dev vx0 dst "$u"
    done
    in_ns "${names[$i]}" ip addr add "${over[$i]}/24" dev vx0
    in_ns "${names[$i]}" ip link set vx0 up
    in_ns "${names[$i]}" ethtool -K vx0 tso off gso off gro off tx off >/dev/null 2>&1 || true
  done
  nginx_only vxs 192.168.77.1
  bg vxt "$SG" bench tracker --tls --listen 192.168.77.2:443
  head -c 3000000 /dev/urandom > "$s/payload-vx.bin"
  mktorrent -l 16 -a https://192.168.77.2/announce -o "$s/t.torrent" "$s/payload-vx.bin" >/dev/null
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/vxlan-swarm.pcap" 'udp port 4789' 2>/dev/null
  local tcpdump_pid=${SG_PIDS[-1]}
  sleep 1
  for i in 1 2 3; do
    local d=$s/vx$i
    mkdir -p "$d/data" "$d/watch"
    peer_settings "$d" 2 false $((20000 + RANDOM % 20000))
    [ $i = 1 ] && cp "$s/payload-vx.bin" "$d/data/"
    bg "vx$i" env TR_CURL_SSL_NO_VERIFY=1 transmission-daemon -f -g "$d" -e "$d/log"
  done
  sleep 2
  for i in 1 2 3; do cp "$s/t.torrent" "$s/vx$i/watch/"; done
  ( for n in 1 2 3; do in_ns vxw curl -sk --max-time 10 -o /dev/null "https://192.168.77.1/p$n.html" || true
      in_ns vx2 curl -sk --max-time 10 -o /dev/null "https://192.168.77.1/p$n.html" || true; sleep 2; done ) & local n1=$!
  local deadline=$((SECONDS+90)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for i in 2 3; do [ "$(percent "vx$i")" = "100%" ] && done=$((done+1)); done
    [ $done = 2 ] && break
    sleep 2
  done
  wait $n1 || true
  echo "   leechers complete: $done/2" >&2
  sleep 2
  for i in 1 2 3; do in_ns "vx$i" transmission-remote 127.0.0.1:9091 --exit >/dev/null 2>&1 || true; done
  sleep 2
  kill "$tcpdump_pid" 2>/dev/null || true
  sleep 1
  [ $done = 2 ] || { echo "capture.sh: vxlan-swarm: swarm did not complete" >&2; return 1; }
}

# busy_scenario: normal hosts with peer-like fan-out, no BitTorrent.
busy_scenario() {
  echo "== busy" >&2
  local s=$SG_WORK/busy i j
  mkdir -p "$s" && chmod 755 "$s"
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/busy.pcap" 2>/dev/null
  local tcpdump_pid=${SG_PIDS[-1]}
  # The relay and its far peer.
  bg turn turnserver -n --listening-ip=10.77.0.3 --relay-ip=10.77.0.3 --listening-port=3478 --min-port=49152 \
    --max-port=65535 --lt-cred-mech --user=sg:sgpass --realm=sg.test --no-tls --no-dtls --no-cli \
    --log-file=stdout --simple-log --pidfile="$s/turn.pid" >/dev/null
  bg tpeer turnutils_peer -L 10.77.0.4 -p 3480 >/dev/null
  # A recursive resolver in front of dnsmasq.
  cat > "$s/unbound.conf" <<UB
server:
  interface: 10.77.0.5
  access-control: 10.77.0.0/24 allow
  do-daemonize: no
  username: ""
  chroot: ""
  pidfile: "$s/unbound.pid"
  use-syslog: no
  logfile: ""
  do-not-query-localhost: no
  domain-insecure: "test"
  module-config: "iterator"
forward-zone:
  name: "."
  forward-addr: 10.77.0.1
UB
  bg res unbound -d -c "$s/unbound.conf"
  # Web servers for the crawler.
  for i in 1 2 3 4; do nginx_only "w$i" "10.77.0.7$i"; done
  # A game server answering every datagram.
  bg game "$SG" bench udpmesh --listen 10.77.0.6:27015 --reply --min 80 --max 400 --duration 40s
  sleep 2
  local members=() ports=()
  for i in 1 2 3 4 5 6; do ports+=($((40000 + RANDOM % 20000))); done
  for i in 1 2 3 4 5 6; do
    local voice="" video=""
    for j in 1 2 3 4 5 6; do
      [ $i = $j ] && continue
      voice+="${voice:+,}10.77.0.6$j:${ports[$((j-1))]}"
      video+="${video:+,}10.77.0.6$j:$((${ports[$((j-1))]} + 1))"
    done
    # SRTP-like voice every 20 ms; encrypted video (random, large) every 30 ms.
    bg "c$i" "$SG" bench udpmesh --listen "10.77.0.6$i:${ports[$((i-1))]}" --to "$voice" --rtp --interval 60ms --min 70 --max 160 --duration 20s
    bg "c$i" "$SG" bench udpmesh --listen "10.77.0.6$i:$((${ports[$((i-1))]} + 1))" --to "$video" --interval 100ms --min 700 --max 1200 --duration 20s
    # Encrypted game and interactive (mosh-like) UDP.
    bg "c$i" "$SG" bench udpmesh --listen "10.77.0.6$i:$((30000 + RANDOM % 10000))" --to 10.77.0.6:27015 --interval 66ms --min 40 --max 200 --duration 20s
    bg "c$i" "$SG" bench udpmesh --listen "10.77.0.6$i:$((60001 + i))" --to 10.77.0.1:60001 --interval 100ms --min 40 --max 120 --duration 20s
    # TURN sessions relayed to the far peer (two clients use client-to-client).
    if [ $i -le 2 ]; then
      bg "c$i" turnutils_uclient -y -c -u sg -w sgpass -m 2 -n 250 -l 170 -z 40 10.77.0.3
    else
      bg "c$i" turnutils_uclient -c -u sg -w sgpass -e 10.77.0.4 -r 3480 -m 3 -n 250 -l 170 -z 40 10.77.0.3
    fi
  done
  bg srv "$SG" bench udpmesh --listen 10.77.0.1:60001 --reply --min 40 --max 300 --duration 35s
  # Resolver clients, the crawler, ssh sessions to one bastion.
  local loops=()
  for i in 1 2 3 4 5 6; do
    ( for n in $(seq 1 40); do in_ns "c$i" dig +short +time=1 +tries=1 @10.77.0.5 "h$n-$i.www.test" >/dev/null 2>&1 || true; done ) &
    loops+=($!)
  done
  ( for n in $(seq 1 6); do for w in 1 2 3 4; do
      in_ns crawl curl -s --max-time 5 -o /dev/null "http://10.77.0.7$w/p$n.html" || true
      in_ns crawl curl -sk --max-time 5 -o /dev/null "https://10.77.0.7$w/p$n.html" || true
    done; in_ns crawl curl -sk --max-time 5 -o /dev/null "https://10.77.0.1/file.bin" || true; done ) &
  loops+=($!)
  for i in 1 2 3 4 5 6; do
    ( for n in 1 2 3; do in_ns "c$i" ssh -i "$SG_SSHKEY" "${SSHOPT[@]}" root@10.77.0.1 'head -c 50000 /dev/zero' >/dev/null 2>&1 || true; sleep 5; done ) &
    loops+=($!)
  done
  sleep 32
  wait "${loops[@]}" || true
  sleep 2
  kill "$tcpdump_pid" 2>/dev/null || true
  sleep 1
}

scenario() {
  local name=$1 enc discovery announce ports
  [ "$name" = hidden-lt ] && { lt_scenario; return; }
  [ "$name" = hidden-mix ] && { mix_scenario; return; }
  [ "$name" = busy ] && { busy_scenario; return; }
  [ "$name" = vxlan-swarm ] && { vxlan_scenario; return; }
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
