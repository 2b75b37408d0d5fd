#!/usr/bin/env bash
# Install the Debian packages the benchmarks and the capture harness use
# (not needed by make test), and any packages named as arguments. Root;
# apt-get update runs first.
set -euo pipefail
pkgs=(libndpi-bin transmission-daemon transmission-cli qbittorrent-nox mktorrent opentracker nginx-light iperf3 tcpdump
      dnsmasq-base openssh-server openssh-client dnsutils ethtool curl openssl iproute2 util-linux tshark prometheus gobgpd "$@")
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
