#!/usr/bin/env bash
# Shared pieces of the bench scripts (sourced): namespaces on Linux bridges,
# the servers of the normal traffic, transmission-daemon peers, opentracker.
# Every namespace, process and directory made here is removed by sg_cleanup,
# which the sourcing script installs as its EXIT trap; only processes these
# functions started are ended, by PID.

SG_PIDS=()
SG_NSS=()
SG_LINKS=()
SG_WORK=$(mktemp -d /tmp/sgbench.XXXXXX)
chmod 755 "$SG_WORK"

sg_cleanup() {
  set +e
  for pid in "${SG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 1
  for pid in "${SG_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for l in "${SG_LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
  for ns in "${SG_NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$SG_WORK"
}

in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
bg() { local ns=$1; shift; ip netns exec "$P-$ns" "$@" & SG_PIDS+=($!); }

mkns() {
  ip netns add "$P-$1"; SG_NSS+=("$P-$1")
  in_ns "$1" ip link set lo up
}

# host NS ADDR BRNS BR: a namespace with eth0=ADDR/24 plugged into bridge BR of BRNS.
SG_NLINK=0
host() {
  local ns=$1 addr=$2 brns=$3 br=$4
  SG_NLINK=$((SG_NLINK+1))
  local port="${P}p$SG_NLINK"
  mkns "$ns"
  ip link add "$port" netns "$P-$brns" type veth peer name eth0 netns "$P-$ns"
  in_ns "$brns" ip link set "$port" master "$br" up
  in_ns "$ns" ip addr add "$addr/24" dev eth0
  in_ns "$ns" ip link set eth0 up
  # Real packet sizes and finished checksums: no offloads.
  in_ns "$ns" ethtool -K eth0 tso off gso off gro off tx off >/dev/null 2>&1 || true
  in_ns "$brns" ethtool -K "$port" tso off gso off gro off tx off >/dev/null 2>&1 || true
  # LSD multicasts to 239.192.152.143 and needs a route for it (no default route).
  in_ns "$ns" ip route add 224.0.0.0/4 dev eth0
}

# web_servers NS IP: nginx (HTTPS and HTTP), sshd, dnsmasq, iperf3 on IP in NS.
# Sets SG_FILE (served file) and SG_SSHKEY (client key).
web_servers() {
  local ns=$1 ip=$2 d=$SG_WORK/srv
  mkdir -p "$d/www" "$d/ssh" "$d/nginx/logs"
  head -c 3000000 /dev/urandom > "$d/www/file.bin"
  SG_FILE=$d/www/file.bin
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$ip" -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
  cat > "$d/nginx.conf" <<NGX
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $d/nginx; proxy_temp_path $d/nginx; fastcgi_temp_path $d/nginx; uwsgi_temp_path $d/nginx; scgi_temp_path $d/nginx;
  server { listen $ip:443 ssl; ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem; root $d/www; }
  server { listen $ip:80; root $d/www; }
}
NGX
  bg "$ns" nginx -c "$d/nginx.conf" -p "$d/nginx" -g 'daemon off;'
  ssh-keygen -q -t ed25519 -N '' -f "$d/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$d/ssh/client"
  cp "$d/ssh/client.pub" "$d/ssh/authorized_keys"
  SG_SSHKEY=$d/ssh/client
  mkdir -p /run/sshd
  cat > "$d/ssh/sshd_config" <<SSH
ListenAddress $ip
HostKey $d/ssh/host
AuthorizedKeysFile $d/ssh/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile $d/ssh/sshd.pid
Subsystem sftp internal-sftp
SSH
  bg "$ns" /usr/sbin/sshd -D -f "$d/ssh/sshd_config"
  bg "$ns" dnsmasq --no-daemon --no-resolv --no-hosts --listen-address="$ip" --bind-interfaces \
      --address=/tracker.test/"$ip" --address=/www.test/"$ip" --pid-file="$d/dnsmasq.pid" --log-facility=-
  bg "$ns" iperf3 -s -B "$ip" --logfile "$d/iperf.log"
  sleep 1
}

# nginx_only NS IP: a web server (HTTP and HTTPS) with a few pages on IP in NS.
nginx_only() {
  local ns=$1 ip=$2 d=$SG_WORK/web-$1
  mkdir -p "$d/www" "$d/logs"
  for n in 1 2 3 4 5 6; do head -c $((20000 * n)) /dev/urandom | base64 > "$d/www/p$n.html"; done
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$ip" -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
  cat > "$d/nginx.conf" <<NGX
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $d; proxy_temp_path $d; fastcgi_temp_path $d; uwsgi_temp_path $d; scgi_temp_path $d;
  server { listen $ip:443 ssl; ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem; root $d/www; }
  server { listen $ip:80; root $d/www; }
}
NGX
  bg "$ns" nginx -c "$d/nginx.conf" -p "$d" -g 'daemon off;'
}

SSHOPT=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)

# peer_settings DIR ENCRYPTION DISCOVERY(true|false) PORT [UTP(true|false)]
peer_settings() {
  local utp=${5:-$3}
  cat > "$1/settings.json" <<JSON
{
  "dht-enabled": $3, "lpd-enabled": $3, "utp-enabled": $utp, "pex-enabled": $3,
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

# opentracker_for NS IP TORRENT DIR: Debian's opentracker serves whitelisted
# torrents only, chrooted, as its own user. Sets SG_OT_PID.
opentracker_for() {
  local ns=$1 ip=$2 torrent=$3 dir=$4
  mkdir -p "$dir" && chmod 755 "$dir"
  transmission-show "$torrent" | awk '/Hash:/{print $2}' > "$dir/whitelist"
  chmod 644 "$dir/whitelist"
  bg "$ns" opentracker -i "$ip" -p 6969 -P 6969 -d "$dir" -w whitelist
  SG_OT_PID=${SG_PIDS[-1]}
}

# percent NS: the download progress of the peer in NS ("100%" when done).
percent() { in_ns "$1" transmission-remote 127.0.0.1:9091 -l 2>/dev/null | awk 'NR==2{print $2}'; }
