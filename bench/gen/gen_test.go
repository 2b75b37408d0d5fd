package gen

import (
	"net"
	"testing"

	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Every flood frame decodes as the flow it says, and 100,000 packets are
// 100,000 distinct flows.
func TestFloodFramesAreDistinctFlows(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	seen := map[shard.Key]bool{}
	var m packet.Meta
	buf := make([]byte, 128)
	for k := uint64(0); k < 100_000; k++ {
		kind := floodKinds["mix"][k%4]
		n := floodFrame(buf, mac, kind, k, 0)
		if r := packet.Decode(packet.LinkEthernet, buf[:n], &m); r != packet.OK {
			t.Fatalf("packet %d (kind %d): %v", k, kind, r)
		}
		if m.IPv6 != (kind >= kUDP6) || (m.Proto == 6) != (kind == kSYN4 || kind == kSYN6) || (m.Proto == 6 && m.TCPFlags != 0x02) {
			t.Fatalf("packet %d: kind %d decoded as v6 %v proto %d flags %x", k, kind, m.IPv6, m.Proto, m.TCPFlags)
		}
		var key shard.Key
		key.Set(&m)
		if seen[key] {
			t.Fatalf("packet %d repeats a flow", k)
		}
		seen[key] = true
	}
}

// The malformed corpus decodes to what it claims in the Go decoder: no
// frame of it panics, and the ones with lying headers are not OK.
func TestMalformedCorpusIsWhatItSays(t *testing.T) {
	var m packet.Meta
	notOK := 0
	c := MalformedCorpus(net.HardwareAddr{2, 0, 0, 0, 0, 1}, 3)
	for _, f := range c {
		if packet.Decode(packet.LinkEthernet, f.Frame, &m) != packet.OK {
			notOK++
		}
	}
	if len(c) < 25 || notOK < 10 {
		t.Fatalf("%d kinds, %d not OK", len(c), notOK)
	}
}

// The spoofing corpus's frames decode, and its forged tracker answer is one
// the recognizer takes (so the scenario tests what a believed answer does).
func TestSpoofCorpusDecodes(t *testing.T) {
	var m packet.Meta
	for i, f := range SpoofCorpus(net.HardwareAddr{2, 0, 0, 0, 0, 1}) {
		if r := packet.Decode(packet.LinkEthernet, f, &m); r != packet.OK {
			t.Fatalf("frame %d: %v", i, r)
		}
	}
}
