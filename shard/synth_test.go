package shard

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/classifier"
)

// pkt is one synthetic packet of a test capture.
type pkt struct {
	at       time.Duration
	src, dst string // ip:port
	tcp      bool
	flags    byte
	payload  string
}

// synth writes packets as a raw-IP pcap in memory and classifies it.
func synth(t *testing.T, pkts []pkt) *Result {
	t.Helper()
	return synthWith(t, pkts, classifier.DefaultModel())
}

// synthWith is synth with model m.
func synthWith(t *testing.T, pkts []pkt, m *classifier.Model) *Result {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	for _, p := range pkts {
		b := ipv4(p)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Replay(newCapture(t, &buf), "synthetic.pcap", Options{Worker: Config{Model: m}})
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	return res
}

func ipv4(p pkt) []byte {
	s, d := netip.MustParseAddrPort(p.src), netip.MustParseAddrPort(p.dst)
	l4 := make([]byte, 8)
	proto := byte(17)
	if p.tcp {
		proto = 6
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
		l4[13] = p.flags
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(p.payload)))
	}
	binary.BigEndian.PutUint16(l4[0:], s.Port())
	binary.BigEndian.PutUint16(l4[2:], d.Port())
	b := make([]byte, 20, 20+len(l4)+len(p.payload))
	b[0], b[8], b[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)+len(p.payload)))
	sa, da := s.Addr().As4(), d.Addr().As4()
	copy(b[12:], sa[:])
	copy(b[16:], da[:])
	return append(append(b, l4...), p.payload...)
}

func flowLabel(res *Result, a, b string) string {
	if b < a {
		a, b = b, a
	}
	for _, f := range res.Flows {
		if f.A == a && f.B == b {
			return f.Label
		}
	}
	return "missing"
}

func hostLabel(res *Result, h string) string {
	for _, r := range res.Hosts {
		if r.Host == h {
			return r.Label
		}
	}
	return "missing"
}

const (
	syn    = 0x02
	synAck = 0x12
	ack    = 0x10
	psh    = 0x18
)

// A tracker answer announces 10.0.0.9:51413; the host's later SYN to it,
// never answered, is p2p from its first packet.
func TestPredictedPeerSYNIsP2P(t *testing.T) {
	peer := "\x0a\x00\x00\x09\xc8\xd5" // 10.0.0.9:51413
	res := synth(t, []pkt{
		{0, "10.0.0.5:40000", "10.0.0.1:6969", true, syn, ""},
		{1 * time.Millisecond, "10.0.0.1:6969", "10.0.0.5:40000", true, synAck, ""},
		{2 * time.Millisecond, "10.0.0.5:40000", "10.0.0.1:6969", true, psh,
			"GET /announce?info_hash=%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13%14&peer_id=-TR3000-abcdefghijkl&port=51413&compact=1 HTTP/1.1\r\nHost: t\r\n\r\n"},
		{20 * time.Millisecond, "10.0.0.1:6969", "10.0.0.5:40000", true, psh,
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nd8:intervali1800e5:peers6:" + peer + "e"},
		{30 * time.Millisecond, "10.0.0.5:41000", "10.0.0.9:51413", true, syn, ""},
		{1030 * time.Millisecond, "10.0.0.5:41000", "10.0.0.9:51413", true, syn, ""},
		{1040 * time.Millisecond, "10.0.0.5:42000", "10.0.0.77:51413", true, syn, ""}, // not announced
	})
	if got := flowLabel(res, "10.0.0.5:41000", "10.0.0.9:51413"); got != "p2p" {
		for _, f := range res.Flows {
			t.Logf("%+v", f)
		}
		t.Fatalf("SYN to predicted peer: %s", got)
	}
	if got := flowLabel(res, "10.0.0.5:42000", "10.0.0.77:51413"); got == "p2p" {
		t.Fatalf("SYN to a peer nobody announced: %s", got)
	}
	if got := flowLabel(res, "10.0.0.1:6969", "10.0.0.5:40000"); got != "p2p" {
		t.Fatalf("tracker announce: %s", got)
	}
}

// One spoofed DHT packet is a p2p flow by its structure, but never makes its
// supposed source a p2p host: nothing answered it.
func TestSpoofedPacketDoesNotMakeAP2PHost(t *testing.T) {
	krpc := "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
	res := synth(t, []pkt{{0, "10.0.0.66:6881", "10.0.0.5:6881", false, 0, krpc}})
	if got := flowLabel(res, "10.0.0.66:6881", "10.0.0.5:6881"); got != "p2p" {
		t.Fatalf("KRPC flow: %s", got)
	}
	for _, h := range []string{"10.0.0.66", "10.0.0.5"} {
		if got := hostLabel(res, h); got == "p2p" {
			t.Fatalf("host %s labelled p2p from one spoofed packet", h)
		}
	}
}

// noise is n pseudo-random bytes (a DH value or ciphertext), deterministic per seed.
func noise(seed, n int) string {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// mseFlow is a TCP flow from c to s through the whole MSE/PE exchange and
// then some ciphertext each way, starting at t0, 1 ms between packets.
func mseFlow(t0 time.Duration, c, s string, seed, data int) []pkt {
	ps := []pkt{
		{0, c, s, true, syn, ""},
		{0, s, c, true, synAck, ""},
		{0, c, s, true, psh, noise(seed, 96+37)},
		{0, s, c, true, psh, noise(seed+1, 96+211)},
		{0, c, s, true, psh, noise(seed+2, 150)}, // hashes, VC, crypto_provide, PadC, IA
		{0, s, c, true, psh, noise(seed+3, 40)},  // VC, crypto_select, PadD
	}
	for i := 0; i < data; i++ {
		ps = append(ps, pkt{0, c, s, true, psh, noise(seed+4+2*i, 1200)}, pkt{0, s, c, true, psh, noise(seed+5+2*i, 68)})
	}
	for i := range ps {
		ps[i].at = t0 + time.Duration(i)*time.Millisecond
	}
	return ps
}

// An encrypted flow decided normal while its hosts were calm is re-decided
// p2p, with no packet of its own, at the tick after one of its hosts turns
// p2p; the record says so. With the fitted weights an MSE-shaped flow
// between high ports is already unknown on its own; the model's bias is
// lowered by 3 so that it is first decided normal, as a flow with less
// evidence of its own would be, whatever the current fit.
func TestRedecideWhenHostTurnsP2P(t *testing.T) {
	const host, other = "10.0.0.5", "10.0.0.9"
	x := [2]string{host + ":40001", other + ":50001"}
	// Both hosts seen (and calm) before the flow.
	ps := []pkt{
		{0, host + ":33333", other + ":53", false, 0, "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x04test\x00\x00\x01\x00\x01"},
		{time.Millisecond, other + ":53", host + ":33333", false, 0, "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03www\x04test\x00\x00\x01\x00\x01"},
	}
	ps = append(ps, mseFlow(150*time.Millisecond, x[0], x[1], 1, 5)...)
	// Then the host shows what it is: MSE exchanges with eight peers.
	for i := range 8 {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i)}), uint16(20000+i)).String()
		ps = append(ps, mseFlow(400*time.Millisecond+time.Duration(i)*20*time.Millisecond, fmt.Sprintf("%s:%d", host, 41000+i), peer, 100+10*i, 2)...)
	}
	// Traffic goes on, so the clock ticks after the host turned.
	for i := range 10 {
		ps = append(ps, pkt{time.Second + time.Duration(i)*100*time.Millisecond, "10.0.0.7:33334", "10.0.0.8:9999", false, 0, "tick"})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
	m := *classifier.DefaultModel()
	m.Bias -= 3
	res := synthWith(t, ps, &m)
	if got := hostLabel(res, host); got != "p2p" {
		t.Fatalf("host %s is %s: the scenario did not turn it", host, got)
	}
	for _, f := range res.Flows {
		a, b := x[0], x[1]
		if b < a {
			a, b = b, a
		}
		if f.A != a || f.B != b {
			continue
		}
		if f.Label != "p2p" || !f.Redecided {
			t.Fatalf("flow %s-%s: label %s, redecided %v, decided at packet %d (p %.3f, %v)", f.A, f.B, f.Label, f.Redecided, f.DecidedAt, f.P, f.Reasons)
		}
		return
	}
	t.Fatal("flow missing")
}

// A relay with many high-port UDP peers, whose test streams (a counter,
// then constant filler, echoed by the far side) look like uTP packet by
// packet, and a few of whose TCP clients open with two random-looking turns
// of MSE's sizes: no flow has P2P evidence of its own, so neither the relay
// nor any flow is p2p.
func TestRelayWithWeakMatchesStaysNormal(t *testing.T) {
	const relay = "10.0.0.3"
	var ps []pkt
	for i := range 40 {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(10 + i)}), uint16(30000+i)).String()
		port := fmt.Sprintf("%s:%d", relay, 49152+i)
		t0 := time.Duration(i) * 50 * time.Millisecond
		for j := range 30 {
			p := make([]byte, 170)
			for k := range p {
				p[k] = 0x41
			}
			binary.LittleEndian.PutUint32(p, uint32(j+1))
			at := t0 + time.Duration(j)*20*time.Millisecond
			ps = append(ps, pkt{at, client, port, false, 0, string(p)}, pkt{at + time.Millisecond, port, client, false, 0, string(p)})
		}
	}
	for i := range 4 { // two MSE-sized random turns, then a short exchange
		c := fmt.Sprintf("10.0.3.%d:%d", 10+i, 40000+i)
		s := relay + ":5349"
		t0 := 3*time.Second + time.Duration(i)*100*time.Millisecond
		ps = append(ps, pkt{t0, c, s, true, syn, ""}, pkt{t0 + time.Millisecond, s, c, true, synAck, ""},
			pkt{t0 + 2*time.Millisecond, c, s, true, psh, noise(i, 200)}, pkt{t0 + 3*time.Millisecond, s, c, true, psh, noise(i+50, 300)},
			pkt{t0 + 4*time.Millisecond, c, s, true, psh, noise(i+90, 30)})
	}
	for i := range 10 {
		ps = append(ps, pkt{5*time.Second + time.Duration(i)*100*time.Millisecond, "10.0.0.7:33334", "10.0.0.8:9999", false, 0, "tick"})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
	res := synth(t, ps)
	for _, f := range res.Flows {
		if f.Label == "p2p" {
			t.Errorf("flow %s %s %s is p2p (p %.3f, %v)", f.Proto, f.A, f.B, f.P, f.Reasons)
		}
	}
	for _, h := range res.Hosts {
		if h.Label == "p2p" {
			t.Errorf("host %s is p2p (p %.3f, %v)", h.Host, h.P, h.Reasons)
		}
	}
	if got := hostLabel(res, relay); got == "missing" {
		t.Fatal("relay missing")
	}
}
