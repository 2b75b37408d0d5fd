// Package capture knows the address plan of bench/capture/capture.sh, so
// that its captures can be labelled from ground truth: which namespaces ran
// BitTorrent clients and trackers is known by construction, not guessed.
package capture

import "net/netip"

// The address plan of capture.sh.
var (
	Server       = netip.MustParseAddr("10.77.0.1")  // opentracker :6969, nginx, sshd, dnsmasq, iperf3
	HTTPSTracker = netip.MustParseAddr("10.77.0.2")  // the hidden swarm's tracker, TLS only
	Web          = netip.MustParseAddr("10.77.0.50") // a host with no BitTorrent at all
	LSDGroup     = netip.MustParseAddr("239.192.152.143")
)

// OpenTrackerPort is where opentracker listens (TCP and UDP) on Server.
const OpenTrackerPort = 6969

// IsBTHost reports whether a runs a BitTorrent client.
func IsBTHost(a netip.Addr) bool { return Client(a) != "" }

// Client names the BitTorrent client a runs, "" for none: transmission-daemon
// on 10.77.0.11-15 (.15 announces and vanishes), qbittorrent-nox on .21-24,
// the mixed swarm's transmission, qbittorrent, rtorrent, aria2, deluge
// and python3-libtorrent on .31-36, and transmission-daemon on the VXLAN
// overlay's 192.168.77.11-13.
func Client(a netip.Addr) string {
	if !a.Is4() {
		return ""
	}
	b := a.As4()
	if b[0] == 192 && b[1] == 168 && b[2] == 77 && b[3] >= 11 && b[3] <= 13 {
		return "transmission" // the VXLAN overlay's swarm
	}
	if b[0] != 10 || b[1] != 77 || b[2] != 0 {
		return ""
	}
	switch h := b[3]; {
	case h >= 11 && h <= 15:
		return "transmission"
	case h >= 21 && h <= 24:
		return "qbittorrent"
	case h >= 31 && h <= 36:
		return [...]string{"transmission", "qbittorrent", "rtorrent", "aria2", "deluge", "libtorrent"}[h-31]
	}
	return ""
}

// Label is the ground truth of a flow between a and b: "bittorrent" for
// peer flows between two BitTorrent hosts, their announces to opentracker
// and their LSD multicasts; "other" for everything else, the BitTorrent
// hosts' own HTTPS, SSH and DNS included. Announces to the HTTPS tracker are
// TLS and count as other: nothing in them is BitTorrent to a passive
// observer.
func Label(a, b netip.AddrPort) string {
	bt := func(x, y netip.AddrPort) bool {
		switch {
		case IsBTHost(x.Addr()) && IsBTHost(y.Addr()):
			return true
		case IsBTHost(x.Addr()) && y.Addr() == Server && y.Port() == OpenTrackerPort:
			return true
		case IsBTHost(x.Addr()) && y.Addr() == LSDGroup:
			return true
		}
		return false
	}
	if bt(a, b) || bt(b, a) {
		return "bittorrent"
	}
	return "other"
}
