package classifier

import (
	"bytes"
	"net/netip"
)

// HTTP is what the HTTP recognizer found in the head of a request or response.
type HTTP struct {
	Request      bool // a request line with a known method
	Response     bool // a status line
	Tracker      bool // GET /announce or /scrape with info_hash (and peer_id for announce)
	BTAgent      bool // a BitTorrent client's User-Agent
	PeerID       bool // a peer_id with a known client prefix
	TrackerReply bool // a response whose body is a bencoded tracker reply
	Peers        int  // peers in the reply
}

// httpHeadMax bounds how much of a request or response head is read.
const httpHeadMax = 1024

var (
	methods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "CONNECT ", "DELETE ", "PATCH "}
	// btAgents are User-Agent prefixes of BitTorrent clients and libraries
	// (announces, webseed and metadata fetches).
	btAgents = [...]string{
		"Transmission/", "uTorrent/", "BitTorrent/", "qBittorrent/", "Deluge", "libtorrent/",
		"rtorrent/", "Azureus ", "Vuze", "BitComet/", "aria2/", "Tixati", "BiglyBT", "Frostwire",
		"KTorrent", "BitLord", "webtorrent", "WebTorrent", "Tribler", "FlashGet", "Xunlei", "Thunder",
	}
)

// ParseHTTP recognises the head of an HTTP request or response in the first
// payload of a direction. Signatures are matched where the protocol puts them
// (request line, User-Agent header, bencoded body), never anywhere in a page.
func ParseHTTP(b []byte, peers *Peers) HTTP {
	var h HTTP
	head := b[:min(len(b), httpHeadMax)]
	if bytes.HasPrefix(head, []byte("HTTP/1.")) {
		h.Response = true
		end := bytes.Index(head, []byte("\r\n\r\n"))
		if end >= 0 && end+4 < len(b) && b[end+4] == 'd' {
			h.TrackerReply, h.Peers = parseTrackerBody(b[end+4:], peers)
		}
		return h
	}
	for _, m := range methods {
		if bytes.HasPrefix(head, []byte(m)) {
			h.Request = true
			break
		}
	}
	if !h.Request {
		return h
	}
	line := head
	if i := bytes.Index(head, []byte("\r\n")); i >= 0 {
		line = head[:i]
	}
	if bytes.HasPrefix(line, []byte("GET /")) {
		path := line[4:]
		if q := bytes.IndexByte(path, '?'); q >= 0 {
			p, query := path[:q], path[q:]
			announce := bytes.HasSuffix(p, []byte("announce")) || bytes.Contains(p, []byte("/announce"))
			scrape := bytes.HasSuffix(p, []byte("scrape")) || bytes.Contains(p, []byte("/scrape"))
			hasHash := bytes.Contains(query, []byte("info_hash="))
			if i := bytes.Index(query, []byte("peer_id=")); i >= 0 {
				var buf [8]byte
				h.PeerID = KnownPeerID(unescapePrefix(query[i+8:], &buf))
				h.Tracker = announce && hasHash
			}
			if scrape && hasHash {
				h.Tracker = true
			}
		}
	}
	if i := bytes.Index(head, []byte("\r\nUser-Agent: ")); i >= 0 {
		ua := head[i+14:]
		for _, a := range btAgents {
			if bytes.HasPrefix(ua, []byte(a)) {
				h.BTAgent = true
				break
			}
		}
	}
	return h
}

// ParseTrackerBody recognises a bencoded tracker response (BEP 3, BEP 23,
// BEP 7) sent as its own segment, and collects its peers.
func ParseTrackerBody(b []byte, peers *Peers) (ok bool, n int) {
	if len(b) == 0 || b[0] != 'd' {
		return false, 0
	}
	return parseTrackerBody(b, peers)
}

func parseTrackerBody(b []byte, peers *Peers) (ok bool, n int) {
	interval, peerKey, failure := false, false, false
	var ip [4]byte
	haveIP := false
	bwalk(b, func(p bpos, v bvalue) bool {
		switch p.depth {
		case 1:
			switch k := p.key(1); {
			case eq(k, "interval"), eq(k, "min interval"):
				interval = v.kind == 'i'
			case eq(k, "failure reason"):
				failure = v.kind == 's'
			case eq(k, "peers"), eq(k, "peers6"):
				peerKey = true
				v6 := eq(k, "peers6")
				if v.kind == 's' && peers.addCompact(v.str, v6) {
					if v6 {
						n += len(v.str) / 18
					} else {
						n += len(v.str) / 6
					}
				}
			}
		case 3: // dictionary model: peers -> list -> {ip, port, peer id}
			if !eq(p.key(1), "peers") || p.key(2) != nil {
				return true
			}
			switch k := p.key(3); {
			case eq(k, "ip") && v.kind == 's':
				ip, haveIP = parseIPv4(v.str)
			case eq(k, "port") && v.kind == 'i' && v.num > 0 && v.num < 65536:
				n++
				if haveIP {
					peers.add(netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(v.num)))
				}
				haveIP = false
			}
		}
		return true
	})
	return (interval && peerKey) || failure, n
}

// parseIPv4 parses dotted-quad text without allocating.
func parseIPv4(b []byte) (ip [4]byte, ok bool) {
	part, val, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9' && digits < 3:
			val = val*10 + int(c-'0')
			digits++
		case c == '.' && digits > 0 && part < 3 && val < 256:
			ip[part] = byte(val)
			part, val, digits = part+1, 0, 0
		default:
			return ip, false
		}
	}
	if part != 3 || digits == 0 || val > 255 {
		return ip, false
	}
	ip[3] = byte(val)
	return ip, true
}

// unescapePrefix decodes the start of a URL-encoded value into out.
func unescapePrefix(b []byte, out *[8]byte) []byte {
	n := 0
	for i := 0; i < len(b) && n < len(out); i++ {
		c := b[i]
		if c == '&' || c == ' ' {
			break
		}
		if c == '%' && i+2 < len(b) {
			hi, lo := unhex(b[i+1]), unhex(b[i+2])
			if hi < 0 || lo < 0 {
				break
			}
			c = byte(hi<<4 | lo)
			i += 2
		}
		out[n] = c
		n++
	}
	return out[:n]
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
