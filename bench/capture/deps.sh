#!/usr/bin/env bash
# Install what capture.sh needs: bench/deps.sh's packages plus the other
# BitTorrent clients of the mixed swarm and the busy normal servers (root).
# Not needed by make test, which replays the committed captures.
set -euo pipefail
exec bash "$(dirname "$0")/../deps.sh" rtorrent aria2 deluged deluge-console python3-libtorrent coturn unbound
