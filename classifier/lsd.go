package classifier

import (
	"bytes"
	"net/netip"
)

// LSD multicast groups and port (BEP 14).
var (
	LSDGroup4 = netip.MustParseAddr("239.192.152.143")
	LSDGroup6 = netip.MustParseAddr("ff15::efc0:988f")
)

// LSDPort is the BEP 14 port.
const LSDPort = 6771

// IsLSD recognises a BEP 14 announce: a BT-SEARCH request with an Infohash
// header, sent to the LSD group and port.
func IsLSD(dst netip.Addr, dport uint16, b []byte) bool {
	if dport != LSDPort || (dst != LSDGroup4 && dst != LSDGroup6) {
		return false
	}
	return bytes.HasPrefix(b, []byte("BT-SEARCH * HTTP/1.")) && bytes.Contains(b[:min(len(b), 512)], []byte("\r\nInfohash: "))
}
