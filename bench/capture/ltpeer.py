#!/usr/bin/python3
# A libtorrent-rasterbar peer through python3-libtorrent, for capture.sh:
# MSE/PE required both ways, no DHT, LSD, PEX, uTP, UPnP or NAT-PMP, the
# tracker's self-signed certificate accepted. It seeds or leeches TORRENT
# into DIR on IP:PORT until killed.
#
#   ltpeer.py IP PORT TORRENT DIR
import sys
import time

import libtorrent as lt


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: ltpeer.py IP PORT TORRENT DIR")
    ip, port, torrent, save = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    settings = {
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "in_enc_policy": int(lt.enc_policy.forced),
        "out_enc_policy": int(lt.enc_policy.forced),
        "allowed_enc_level": int(lt.enc_level.rc4),
        "validate_https_trackers": False,
        "upload_rate_limit": 400 * 1024,
        "alert_mask": 0,
    }
    # No default plugins: ut_pex is one of them.
    ses = lt.session(settings, 0)
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(torrent)
    p.save_path = save
    ses.add_torrent(p)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
