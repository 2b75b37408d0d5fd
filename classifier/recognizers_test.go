package classifier

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestHandshakeMatchesWholeAndSplitAcrossSegments(t *testing.T) {
	hs := first(t, "bittorrent.pcap", port(52894)) // "\x13BitTorrent protocol" + reserved + hash + "-UM1860-..."
	if !bytes.HasPrefix(hs, []byte(HandshakePrefix)) {
		t.Fatalf("corpus packet is not a handshake: % x", hs[:20])
	}
	if got := MatchHandshake(0, hs); got != len(HandshakePrefix) {
		t.Fatalf("whole handshake: matched %d", got)
	}
	for cut := 1; cut < len(HandshakePrefix); cut++ {
		m := MatchHandshake(0, hs[:cut])
		if m != cut {
			t.Fatalf("cut %d: first part matched %d", cut, m)
		}
		if got := MatchHandshake(m, hs[cut:]); got != len(HandshakePrefix) {
			t.Fatalf("cut %d: second part matched %d", cut, got)
		}
	}
	if got := MatchHandshake(0, []byte("\x13BitTorrent protocoX")); got != -1 {
		t.Fatalf("near miss matched %d", got)
	}
	if !KnownPeerID(hs[48:56]) {
		t.Fatalf("peer id %q not recognised", hs[48:56])
	}
}

func TestPeerWireGrammar(t *testing.T) {
	msg := func(id byte, body ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
		return append(append(b, id), body...)
	}
	have := msg(msgHave, 0, 0, 0, 7)
	req := msg(msgRequest, make([]byte, 12)...)
	cases := []struct {
		name  string
		in    []byte
		msgs  int
		tiled bool
	}{
		{"have+request tile", append(append([]byte{}, have...), req...), 2, true},
		{"keepalive+interested", append([]byte{0, 0, 0, 0}, msg(msgInterested)...), 2, true},
		{"have with wrong length", msg(msgHave, 1, 2), 0, false},
		{"unknown id", msg(42, 1, 2, 3), 0, false},
		{"piece running past segment", append(append([]byte{}, have...), binary.BigEndian.AppendUint32(nil, 16393)[0:4]...), 1, false},
		{"length prefix over ciphertext", []byte{0, 0, 1, 0, 0x9c, 0x11, 0x42, 0x77}, 0, false},
	}
	for _, c := range cases {
		r := ParseWire(c.in, nil)
		if r.Messages != c.msgs || r.Tiled != c.tiled {
			t.Errorf("%s: got %+v, want %d messages tiled=%v", c.name, r, c.msgs, c.tiled)
		}
	}
}

func TestExtensionHandshakeAndPEX(t *testing.T) {
	ext := []byte("d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e1:v13:Transmission 3e")
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(ext)))
	b = append(append(b, msgExtended, 0), ext...)
	if r := ParseWire(b, nil); !r.ExtHS || !r.Tiled {
		t.Fatalf("extension handshake: %+v", r)
	}
	pex := []byte("d5:added12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe27:added.f2:\x00\x00e")
	b = binary.BigEndian.AppendUint32(nil, uint32(2+len(pex)))
	b = append(append(b, msgExtended, 1), pex...)
	var peers Peers
	if r := ParseWire(b, &peers); !r.PEX {
		t.Fatalf("pex: %+v", r)
	}
	if peers.N != 2 || peers.Addr[0] != netip.MustParseAddrPort("10.0.0.1:6881") {
		t.Fatalf("pex peers: %v", peers.Addr[:peers.N])
	}
	fast := append(binary.BigEndian.AppendUint32(nil, 1), msgHaveAll)
	if r := ParseWire(fast, nil); !r.Fast || !r.Tiled {
		t.Fatalf("have all: %+v", r)
	}
}

func TestKRPCOnCorpusDHT(t *testing.T) {
	ps := payloads(t, "lru_ipv6_caches.pcapng", func(m *Packet) bool { return m.Payload[0] == 'd' })
	if len(ps) == 0 {
		t.Fatal("no bencoded payloads in corpus")
	}
	valid, getPeers := 0, 0
	for _, m := range ps {
		k := ParseKRPC(m.Payload, nil)
		if k.Valid {
			valid++
		}
		if k.GetPeer {
			getPeers++
		}
	}
	if valid != len(ps) || getPeers == 0 {
		t.Fatalf("%d of %d KRPC payloads valid, %d get_peers", valid, len(ps), getPeers)
	}
	// Structure, not substrings: a dict that mentions the keys in the wrong places is no KRPC.
	for _, bad := range []string{
		"d1:y1:q1:q4:ping1:t2:aae",                                    // no arguments dict
		"d1:ad2:id19:012345678901234567891:q4:ping1:t2:aa1:y1:qe",     // 19-byte id
		"d1:rd2:id20:012345678901234567895:nodes3:abce1:t2:aa1:y1:re", // nodes not whole records
		"d1:ad2:id20:01234567890123456789e1:q4:ping1:t2:aa1:y1:q",     // cut
	} {
		if ParseKRPC([]byte(bad), nil).Valid {
			t.Errorf("accepted %q", bad)
		}
	}
	var peers Peers
	resp := []byte("d1:rd2:id20:012345678901234567895:token2:xx6:valuesl6:\x0a\x00\x00\x05\x1a\xe1ee1:t2:aa1:y1:re")
	if k := ParseKRPC(resp, &peers); !k.Valid || k.Values != 1 || peers.N != 1 {
		t.Fatalf("get_peers response: %+v, peers %v", k, peers.Addr[:peers.N])
	}
}

func TestUTPNeedsCoherenceAndRejectsDNS(t *testing.T) {
	ps := payloads(t, "bittorrent_utp.pcap", func(m *Packet) bool { return UTPShape(m.Payload) })
	if len(ps) < 4 {
		t.Fatalf("only %d uTP packets in corpus", len(ps))
	}
	// A 20-byte DNS query shaped like a uTP SYN passes the shape test alone...
	dns := []byte{0x41, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00}
	if !UTPShape(dns) {
		t.Fatal("test DNS query should look like a uTP SYN by shape")
	}
	// ...but its retransmission does not continue a uTP connection.
	h := UTP(dns)
	if UTPAdvances(dns, h.ConnID(), h.Seq(), h.Timestamp(), 1e6) {
		t.Fatal("repeated DNS query counted as a coherent uTP flow")
	}
	if IsDNS(40000, 53, dns) == false {
		t.Fatal("the query is DNS")
	}
}

func TestUDPTracker(t *testing.T) {
	connect := binary.BigEndian.AppendUint64(nil, UDPTrackerProtocolID)
	connect = append(connect, 0, 0, 0, 0, 1, 2, 3, 4)
	if !ParseUDPTrackerRequest(connect, false).Request {
		t.Fatal("connect request")
	}
	announce := make([]byte, 98)
	binary.BigEndian.PutUint32(announce[8:], actAnnounce)
	if ParseUDPTrackerRequest(announce, false).Request {
		t.Fatal("announce without a prior connect accepted")
	}
	if !ParseUDPTrackerRequest(announce, true).Request {
		t.Fatal("announce after connect")
	}
	resp := make([]byte, 20+12)
	binary.BigEndian.PutUint32(resp, actAnnounce)
	copy(resp[20:], []byte{10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2})
	var peers Peers
	if r := ParseUDPTrackerResponse(resp, false, &peers); !r.Response || r.Peers != 2 || peers.N != 2 {
		t.Fatalf("announce response: %+v", r)
	}
}

func TestHTTPTrackerAndAgents(t *testing.T) {
	req := []byte("GET /announce?info_hash=%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78&peer_id=-TR3000-abcdefghijkl&port=51413&compact=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: Transmission/3.00\r\n\r\n")
	h := ParseHTTP(req, nil)
	if !h.Tracker || !h.PeerID || !h.BTAgent {
		t.Fatalf("announce: %+v", h)
	}
	page := []byte("GET /magnet-links-explained?q=announce HTTP/1.1\r\nHost: blog\r\nUser-Agent: curl/8.0\r\n\r\n")
	if h := ParseHTTP(page, nil); h.Tracker || h.BTAgent || !h.Request {
		t.Fatalf("web page request: %+v", h)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nd8:intervali1800e5:peers12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe2e")
	var peers Peers
	if h := ParseHTTP(resp, &peers); !h.TrackerReply || h.Peers != 2 || peers.N != 2 {
		t.Fatalf("tracker reply: %+v peers %v", h, peers.Addr[:peers.N])
	}
	dict := []byte("d8:intervali900e5:peersld2:ip8:10.0.0.77:peer id20:-TR3000-abcdefghijkl4:porti6881eeee")
	peers.Reset()
	if ok, n := ParseTrackerBody(dict, &peers); !ok || n != 1 || peers.N != 1 || peers.Addr[0] != netip.MustParseAddrPort("10.0.0.7:6881") {
		t.Fatalf("dictionary peers: ok=%v n=%d %v", ok, n, peers.Addr[:peers.N])
	}
}

func TestLSD(t *testing.T) {
	msg := []byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n\r\n")
	if !IsLSD(LSDGroup4, LSDPort, msg) || !IsLSD(LSDGroup6, LSDPort, msg) {
		t.Fatal("LSD announce not recognised")
	}
	if IsLSD(netip.MustParseAddr("10.0.0.1"), LSDPort, msg) {
		t.Fatal("LSD text to a unicast address accepted")
	}
}

func TestNormalProtocolsOnCorpus(t *testing.T) {
	if tls := first(t, "443-curl.pcap", func(m *Packet) bool { return m.DstPort == 443 }); !IsTLS(tls) {
		t.Fatalf("TLS client hello not recognised: % x", tls[:8])
	}
	if ssh := first(t, "ssh.pcap", port(22)); !IsSSH(ssh) {
		t.Fatalf("SSH banner not recognised: %q", ssh[:8])
	}
	if q := first(t, "quic046.pcap", port(443)); !IsQUIC(q) {
		t.Fatalf("QUIC long header not recognised: % x", q[:8])
	}
	if s := first(t, "stun.pcap", func(m *Packet) bool { return IsSTUN(m.Payload) }); s == nil {
		t.Fatal("no STUN")
	}
}

func TestMSEShapeIsNotOnePacket(t *testing.T) {
	// An RLPx (Ethereum) first message is the size of an MSE key exchange but
	// carries its own length: framed, not MSE.
	eth := first(t, "ethereum.pcap", func(m *Packet) bool { return m.Proto == ProtoTCP && m.DstPort == 30303 })
	if !LengthFramed(eth) {
		t.Fatalf("RLPx auth (%d bytes, prefix % x) not seen as length-framed", len(eth), eth[:2])
	}
}

func TestRandomTellsKeyExchangeFromStructure(t *testing.T) {
	btc := first(t, "bitcoin.pcap", func(m *Packet) bool { return m.Proto == ProtoTCP && len(m.Payload) >= 96 })
	if Random(btc) {
		t.Fatalf("bitcoin message judged random: % x", btc[:24])
	}
	// MSE's Ya is a DH public value: take the random-looking bytes of a TLS
	// key share is not possible portably, so use a hash chain as the key.
	key := make([]byte, 96)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range key {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		key[i] = byte(x)
	}
	if !Random(key) {
		t.Fatal("pseudo-random key judged structured")
	}
}

// inspectSeq runs payloads through a fresh UDP flow between high ports, one
// packet per millisecond, as the engine would, and returns the flow.
func inspectSeq(dirs []uint8, ps [][]byte) *FlowState {
	var f FlowState
	f.Begin(1e9, ProtoUDP, 40000, 50000)
	b := DefaultBudget()
	b.Packets = 1 << 20 // inspect every packet: the recognizer alone decides
	var s Scratch
	for i, p := range ps {
		now := int64(1e9) + int64(i)*1e6
		f.Account(dirs[i], len(p), 0, now)
		Inspect(&f, dirs[i], &Packet{Payload: p, Proto: ProtoUDP, SrcPort: 40000, DstPort: 50000}, &b, &s)
	}
	return &f
}

// A relay's test stream (a little-endian counter, then constant filler),
// echoed back by the far side, passes the uTP shape test on some packets;
// it must never count as a uTP connection, whatever the filler and counter.
func TestUTPConstantFillerNeverMatches(t *testing.T) {
	shaped := 0
	for _, filler := range []byte{0x00, 0x01, 0x02, 0x04, 0x10, 0x41, 0x7f, 0xff} {
		for start := uint32(0); start < 1024; start += 3 {
			var dirs []uint8
			var ps [][]byte
			for i := uint32(0); i < 64; i++ {
				p := make([]byte, 170)
				for j := range p {
					p[j] = filler
				}
				binary.LittleEndian.PutUint32(p, start+i)
				if UTPShape(p) {
					shaped++
				}
				dirs, ps = append(dirs, 0, 1), append(ps, p, p) // sent, then echoed
			}
			if f := inspectSeq(dirs, ps); f.Evidence&EvUTP != 0 {
				t.Fatalf("filler %#x, counter from %d: constant payload counted as uTP", filler, start)
			}
		}
	}
	if shaped == 0 {
		t.Fatal("no filler packet has the uTP shape: the test tests nothing")
	}
}

// A live uTP connection: SYN, STATE, then DATA with advancing seq_nr and
// timestamps, acknowledged. It counts after the first advance; one side
// alone counts after three.
func TestUTPLiveConnectionCounts(t *testing.T) {
	pkt := func(typ uint8, conn, seq, ack uint16, ts uint32, data int) []byte {
		p := make([]byte, UTPMinimumSize+data)
		p[0] = typ<<4 | 1
		binary.BigEndian.PutUint16(p[2:], conn)
		binary.BigEndian.PutUint32(p[4:], ts)
		binary.BigEndian.PutUint32(p[12:], 1<<20)
		binary.BigEndian.PutUint16(p[16:], seq)
		binary.BigEndian.PutUint16(p[18:], ack)
		return p
	}
	dirs := []uint8{0, 1, 0, 1, 0}
	ps := [][]byte{
		pkt(UTPSyn, 100, 5000, 0, 1000, 0),
		pkt(UTPState, 100, 9000, 5000, 77000, 0),
		pkt(UTPData, 101, 5001, 9000, 3000, 200),
		pkt(UTPState, 100, 9000, 5001, 79000, 0),
		pkt(UTPData, 101, 5002, 9000, 5000, 200),
	}
	if f := inspectSeq(dirs[:2], ps[:2]); f.Evidence&EvUTP != 0 {
		t.Fatal("SYN and STATE alone counted: nothing advanced yet")
	}
	if f := inspectSeq(dirs[:3], ps[:3]); f.Evidence&EvUTP == 0 {
		t.Fatal("answered and advanced connection not counted")
	}
	one := [][]byte{ps[0], ps[2], ps[4], pkt(UTPData, 101, 5003, 9000, 7000, 200)}
	if f := inspectSeq([]uint8{0, 0, 0, 0}, one); f.Evidence&EvUTP == 0 {
		t.Fatal("one side with three advances not counted")
	}
	if f := inspectSeq([]uint8{0, 0, 0}, one[:3]); f.Evidence&EvUTP != 0 {
		t.Fatal("one side with two advances counted")
	}
	// The same packets with a frozen timestamp are not a live sender.
	frozen := [][]byte{ps[0], ps[1], pkt(UTPData, 101, 5001, 9000, 1000, 200), ps[3], pkt(UTPData, 101, 5002, 9000, 1000, 200)}
	if f := inspectSeq(dirs, frozen); f.Evidence&EvUTP != 0 {
		t.Fatal("constant timestamp counted as a live uTP sender")
	}
}
