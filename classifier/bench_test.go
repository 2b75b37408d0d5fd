package classifier

import (
	"testing"
)

// BenchmarkInspect runs the recognizers on real first payloads (BitTorrent
// handshakes and messages, DHT, uTP, TLS, SSH, RLPx), each on a fresh flow:
// the cost of the deep-inspection stage per inspected packet.
func BenchmarkInspect(b *testing.B) {
	var ms []Packet
	for _, pcap := range []string{"bittorrent.pcap", "bittorrent_utp.pcap", "lru_ipv6_caches.pcapng", "443-curl.pcap", "ssh.pcap", "ethereum.pcap"} {
		ms = append(ms, payloads(b, pcap, func(*Packet) bool { return true })...)
	}
	budget := DefaultBudget()
	var s Scratch
	var f FlowState
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := &ms[i%len(ms)]
		f.Begin(0, m.Proto, m.SrcPort, m.DstPort)
		f.Account(0, len(m.Payload), 0x18, 0)
		Inspect(&f, 0, m, &budget, &s)
	}
}

// BenchmarkScore is one scoring of a flow with evidence and host context.
func BenchmarkScore(b *testing.B) {
	m := DefaultModel()
	var f FlowState
	f.Begin(0, ProtoTCP, 40000, 51413)
	f.Evidence = EvPeerWire
	for i, n := range []int{207, 177, 124, 82, 1400, 1400, 60} {
		f.Account(uint8(i%2), n, 0x18, int64(i)*1e6)
	}
	h := HostFeatures{X: [NumFeatures - FirstHostFeature]float32{0.5, 0.8, 0.2, 0.6, 0.3, 0, 0.1, 0.4}}
	h.Score = m.HostScore(&h.X)
	b.ReportAllocs()
	b.ResetTimer()
	var p float64
	for i := 0; i < b.N; i++ {
		p += m.Score(&f, &h)
	}
	_ = p
}
