#!/usr/bin/env bash
# Record real-client captures in network namespaces for training and tests.
#
#   bench/capture/capture.sh OUTDIR [SCENARIO...]     (root; default: all scenarios)
#
# Scenarios (each one pcap, OUTDIR/<scenario>.pcap, snaplen 256):
#   plain      transmission-daemon, encryption tolerated (plaintext), opentracker HTTP+UDP, DHT/LSD/uTP/PEX on
#   encrypted  transmission-daemon, encryption required (MSE/PE), opentracker HTTP+UDP, DHT/LSD/uTP/PEX on
#   hidden     encryption required, tracker reachable only over HTTPS, DHT/LSD/uTP/PEX off, random peer ports
# In every scenario the BitTorrent hosts also fetch HTTPS from nginx, scp from sshd and resolve names
# from dnsmasq, and a normal host runs curl, ssh and iperf3: those flows must stay normal.
#
# Topology: namespaces sgc-sw (bridge br0, where tcpdump listens), sgc-srv 10.77.0.1 (opentracker,
# nginx, sshd, dnsmasq, iperf3), sgc-htrk 10.77.0.2 (HTTPS tracker), sgc-bt1..4 10.77.0.11-14
# (transmission-daemon; bt1 seeds), sgc-web 10.77.0.50 (normal client). No default routes. Everything
# is removed on exit, also on failure or Ctrl-C; only processes this script started are ended.
set -euo pipefail
OUT=${1:?usage: capture.sh OUTDIR [plain|encrypted|hidden ...]}
shift
SCENARIOS=${*:-plain encrypted hidden}
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (network namespaces)" >&2; exit 2; }
for b in ip tcpdump transmission-daemon transmission-remote transmission-show mktorrent opentracker nginx sshd dnsmasq iperf3 curl dig scp openssl ethtool; do
  command -v "$b" >/dev/null || { echo "capture.sh: $b missing (make captures installs it)" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
SG=${SG:-$HERE/../../bin/swarmguard}
[ -x "$SG" ] || { echo "capture.sh: $SG missing: run make build" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
P=sgc
WORK=$(mktemp -d /tmp/sgcap.XXXXXX)
PIDS=()
NSS=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
bg() { local ns=$1; shift; ip netns exec "$P-$ns" "$@" & PIDS+=($!); }

mkns() {
  ip netns add "$P-$1"; NSS+=("$P-$1")
  in_ns "$1" ip link set lo up
}

topology() {
  mkns sw
  in_ns sw ip link add br0 type bridge
  in_ns sw ip link set br0 up
  local n=0
  for spec in "srv 10.77.0.1" "htrk 10.77.0.2" "bt1 10.77.0.11" "bt2 10.77.0.12" "bt3 10.77.0.13" "bt4 10.77.0.14" "bt5 10.77.0.15" "web 10.77.0.50"; do
    set -- $spec
    n=$((n+1))
    mkns "$1"
    ip link add "sgc$n" netns "$P-sw" type veth peer name eth0 netns "$P-$1"
    in_ns sw ip link set "sgc$n" master br0 up
    in_ns "$1" ip addr add "$2/24" dev eth0
    in_ns "$1" ip link set eth0 up
    # Real packet sizes: no segmentation offloads.
    in_ns "$1" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
    in_ns sw ethtool -K "sgc$n" tso off gso off gro off >/dev/null 2>&1 || true
    # LSD multicasts to 239.192.152.143 and needs a route for it.
    in_ns "$1" ip route add 224.0.0.0/4 dev eth0
  done
}

servers() {
  local d=$WORK/srv
  mkdir -p "$d/www" "$d/ssh" "$d/nginx/logs"
  head -c 3000000 /dev/urandom > "$d/www/file.bin"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=10.77.0.1 -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
  cat > "$d/nginx.conf" <<NGX
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $d/nginx; proxy_temp_path $d/nginx; fastcgi_temp_path $d/nginx; uwsgi_temp_path $d/nginx; scgi_temp_path $d/nginx;
  server { listen 10.77.0.1:443 ssl; ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem; root $d/www; }
  server { listen 10.77.0.1:80; root $d/www; }
}
NGX
  bg srv nginx -c "$d/nginx.conf" -p "$d/nginx" -g 'daemon off;'
  ssh-keygen -q -t ed25519 -N '' -f "$d/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$d/ssh/client"
  cp "$d/ssh/client.pub" "$d/ssh/authorized_keys"
  mkdir -p /run/sshd
  cat > "$d/ssh/sshd_config" <<SSH
ListenAddress 10.77.0.1
HostKey $d/ssh/host
AuthorizedKeysFile $d/ssh/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile $d/ssh/sshd.pid
Subsystem sftp internal-sftp
SSH
  bg srv /usr/sbin/sshd -D -f "$d/ssh/sshd_config"
  bg srv dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.77.0.1 --bind-interfaces \
      --address=/tracker.test/10.77.0.1 --address=/www.test/10.77.0.1 --pid-file="$d/dnsmasq.pid" --log-facility=-
  bg srv iperf3 -s -B 10.77.0.1 --logfile "$d/iperf.log"
  bg htrk "$SG" bench tracker --tls --listen 10.77.0.2:443
  sleep 1
}

SSHOPT=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)

# normal_traffic NS: what a person on that host does besides BitTorrent.
normal_traffic() {
  local ns=$1 d=$WORK/srv
  for i in 1 2 3; do
    in_ns "$ns" dig +short +time=1 +tries=1 @10.77.0.1 www.test >/dev/null || true
    in_ns "$ns" curl -sk --max-time 20 -o /dev/null https://10.77.0.1/file.bin || true
    in_ns "$ns" scp -q -i "$d/ssh/client" "${SSHOPT[@]}" root@10.77.0.1:"$d/www/file.bin" "$WORK/scp.$ns" || true
    sleep 3
  done
}

peer_settings() { # DIR ENCRYPTION DISCOVERY(true|false) PORT
  cat > "$1/settings.json" <<JSON
{
  "dht-enabled": $3, "lpd-enabled": $3, "utp-enabled": $3, "pex-enabled": $3,
  "encryption": $2, "peer-port": $4, "peer-port-random-on-start": false,
  "port-forwarding-enabled": false, "rpc-enabled": true, "rpc-bind-address": "127.0.0.1",
  "rpc-port": 9091, "rpc-authentication-required": false, "rpc-whitelist-enabled": false,
  "speed-limit-up": 400, "speed-limit-up-enabled": true,
  "download-dir": "$1/data", "incomplete-dir-enabled": false,
  "watch-dir": "$1/watch", "watch-dir-enabled": true, "start-added-torrents": true,
  "message-level": 1, "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false
}
JSON
}

scenario() {
  local name=$1 enc discovery announce ports
  case $name in
    plain)     enc=0; discovery=true;  announce="-a http://10.77.0.1:6969/announce -a udp://10.77.0.1:6969/announce"; ports="51413 51413 51413 51413";;
    encrypted) enc=2; discovery=true;  announce="-a http://10.77.0.1:6969/announce -a udp://10.77.0.1:6969/announce"; ports="6881 6881 6881 6881";;
    hidden)    enc=2; discovery=false; announce="-a https://10.77.0.2/announce"; ports="$((20000+RANDOM%20000)) $((20000+RANDOM%20000)) $((20000+RANDOM%20000)) $((20000+RANDOM%20000))";;
    *) echo "capture.sh: unknown scenario $name" >&2; exit 2;;
  esac
  echo "== $name" >&2
  local s=$WORK/$name
  mkdir -p "$s"
  head -c 6000000 /dev/urandom > "$s/payload-$name.bin"
  mktorrent -l 16 $announce -o "$s/t.torrent" "$s/payload-$name.bin" >/dev/null
  # Debian's opentracker serves whitelisted torrents only, chrooted, as its own user.
  local ot_pid=""
  if [ "$name" != hidden ]; then
    mkdir -p "$s/ot" && chmod 755 "$s" "$s/ot"
    transmission-show "$s/t.torrent" | awk '/Hash:/{print $2}' > "$s/ot/whitelist"
    chmod 644 "$s/ot/whitelist"
    bg srv opentracker -i 10.77.0.1 -p 6969 -P 6969 -d "$s/ot" -w whitelist
    ot_pid=${PIDS[-1]}
  fi
  bg sw tcpdump -i br0 -s 256 -U -n -w "$OUT/$name.pcap" 2>/dev/null
  local tcpdump_pid=${PIDS[-1]}
  sleep 1
  # A peer that announces and then vanishes (as peers leaving a swarm do):
  # the tracker keeps handing it out and the others' connection attempts go
  # unanswered, which is what peer prediction must catch.
  if [ "$name" != hidden ]; then
    local g=$s/bt5
    mkdir -p "$g/data" "$g/watch"
    in_ns bt5 ip addr replace 10.77.0.15/24 dev eth0
    peer_settings "$g" "$enc" false 7777
    bg bt5 transmission-daemon -f -g "$g" -e "$g/log"
    local ghost=${PIDS[-1]}
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
    TR_CURL_SSL_NO_VERIFY=1 bg "bt$i" env TR_CURL_SSL_NO_VERIFY=1 transmission-daemon -f -g "$d" -e "$d/log"
  done
  sleep 2
  for i in 1 2 3 4; do cp "$s/t.torrent" "$s/bt$i/watch/"; done
  sleep 3
  in_ns bt1 transmission-remote 127.0.0.1:9091 -t all -v >/dev/null 2>&1 || true
  # Normal traffic beside the swarm, from BitTorrent hosts and from a normal host.
  normal_traffic bt2 & local n1=$!
  normal_traffic web & local n2=$!
  in_ns web iperf3 -c 10.77.0.1 -t 3 -b 8M -l 1200 >/dev/null 2>&1 || true
  in_ns web ssh -i "$WORK/srv/ssh/client" "${SSHOPT[@]}" root@10.77.0.1 'head -c 200000 /dev/zero' >/dev/null 2>&1 || true
  local deadline=$((SECONDS+90)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for i in 2 3 4; do
      in_ns "bt$i" transmission-remote 127.0.0.1:9091 -l 2>/dev/null | grep -q '100%' && done=$((done+1))
    done
    [ $done = 3 ] && break
    sleep 2
  done
  wait $n1 $n2 || true
  echo "   leechers complete: $done/3" >&2
  sleep 3
  for i in 1 2 3 4; do in_ns "bt$i" transmission-remote 127.0.0.1:9091 --exit >/dev/null 2>&1 || true; done
  sleep 2
  kill "$tcpdump_pid" $ot_pid 2>/dev/null || true
  sleep 1
  [ $done = 3 ] || { echo "capture.sh: $name: swarm did not complete (see $s/bt*/log)" >&2; tail -5 "$s"/bt*/log >&2; return 1; }
}

topology
servers
for sc in $SCENARIOS; do scenario "$sc"; done
ls -l "$OUT" >&2
