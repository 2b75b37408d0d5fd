package classifier

import (
	"net/netip"
	"testing"
)

// seeds adds real payloads from the corpus and a few hand-made edge cases.
func seeds(f *testing.F) {
	for _, pcap := range []string{"bittorrent.pcap", "bittorrent_utp.pcap", "lru_ipv6_caches.pcapng", "ethereum.pcap", "443-curl.pcap", "dns_fragmented.pcap"} {
		for i, m := range payloads(f, pcap, func(*Packet) bool { return true }) {
			if i >= 24 {
				break
			}
			f.Add(m.Payload)
		}
	}
	for _, s := range []string{"", "d", "de", "d1:", "li-0e", "i-e", "d999999999:", "\x13BitTorrent protocol", "\x00\x00\x00\x05\x04", "GET /announce?info_hash=&peer_id=%", "HTTP/1.1 200 OK\r\n\r\nd5:peers"} {
		f.Add([]byte(s))
	}
}

func FuzzParseWire(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Peers
		r := ParseWire(b, &p)
		if r.Fixed > r.Messages+1 || p.N > MaxPeers {
			t.Fatalf("inconsistent %+v, %d peers", r, p.N)
		}
	})
}

func FuzzParseKRPC(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Peers
		k := ParseKRPC(b, &p)
		if !k.Valid && (k.Query || k.GetPeer || k.Nodes != 0) {
			t.Fatalf("invalid message with findings %+v", k)
		}
	})
}

func FuzzBencode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _ := bwalk(b, func(p bpos, v bvalue) bool {
			if p.depth < 1 || p.depth > maxBDepth {
				t.Fatalf("depth %d", p.depth)
			}
			return true
		})
		if n < 0 || n > len(b) {
			t.Fatalf("span %d of %d", n, len(b))
		}
	})
}

func FuzzUTP(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if UTPShape(b) {
			h := UTP(b)
			_ = UTPAdvances(b, h.ConnID(), h.Seq()-1, h.Timestamp()-1, 1e6)
			_ = UTPAnswers(b, h.ConnID(), h.Ack())
		}
	})
}

func FuzzUDPTracker(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Peers
		_ = ParseUDPTrackerRequest(b, true)
		r := ParseUDPTrackerResponse(b, len(b)%2 == 0, &p)
		if p.N+p.Dropped > r.Peers {
			t.Fatalf("%d peers collected, %d reported", p.N+p.Dropped, r.Peers)
		}
	})
}

func FuzzHTTP(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Peers
		h := ParseHTTP(b, &p)
		if h.Tracker && !h.Request || h.TrackerReply && !h.Response {
			t.Fatalf("inconsistent %+v", h)
		}
		_, _ = ParseTrackerBody(b, &p)
		var buf [8]byte
		_ = KnownPeerID(unescapePrefix(b, &buf))
	})
}

func FuzzOtherProtocols(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = IsTLS(b) || IsSSH(b) || IsQUIC(b) || IsSTUN(b) || IsDNS(53, 1000, b) || LengthFramed(b) || Printable(b)
		_ = IsLSD(LSDGroup4, LSDPort, b)
	})
}

// FuzzInspect drives a flow through Inspect with packets cut from one input,
// alternating directions, and checks the flow stays within its bounds.
func FuzzInspect(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
			var fl FlowState
			fl.Begin(0, proto, 6881, 51413)
			var s Scratch
			budget := DefaultBudget()
			m := Packet{Dst: netip.MustParseAddr("10.0.0.2"), Proto: proto, SrcPort: 6881, DstPort: 51413}
			rest := b
			for i := 0; len(rest) > 0 && i < 10; i++ {
				n := 1 + int(rest[0])%len(rest)
				m.Payload, rest = rest[:n], rest[n:]
				dir := uint8(i % 2)
				fl.Account(dir, n, 0, int64(i))
				Inspect(&fl, dir, &m, &budget, &s)
				if s.Peers.N > MaxPeers {
					t.Fatal("peer overflow")
				}
			}
			_ = MSEShape(&fl)
		}
	})
}
