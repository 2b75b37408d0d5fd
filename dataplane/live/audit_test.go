package live

import (
	"encoding/binary"
	"testing"

	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// udpFrame is an Ethernet/IPv4/UDP frame from 10.0.0.1:sport to 10.0.0.2:53.
func udpFrame(sport uint16, payload int) []byte {
	b := make([]byte, 14+20+8+payload)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], 53)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+payload))
	return b
}

// The ring gives back a flow's frames, oldest first, cut at AuditSnap,
// with their wire length; frames older than the flow or of other flows
// stay out, and so does whatever the ring has overwritten.
func TestAuditRingFindsAFlowsFirstFrames(t *testing.T) {
	a := newAuditRing()
	a.push(udpFrame(1000, 10), 5) // before the flow began
	for i := range 3 * auditSlots {
		a.push(udpFrame(uint16(2000+i%7), 900), int64(10+i))
	}
	var m packet.Meta
	var k shard.Key
	if packet.Decode(packet.LinkEthernet, udpFrame(2003, 0), &m) != packet.OK {
		t.Fatal("decode")
	}
	k.Set(&m)
	got := a.framesOf(&k, 0, 1000)
	want := 0
	for i := 2 * auditSlots; i < 3*auditSlots; i++ { // what the ring still holds
		if i%7 == 3 {
			want++
		}
	}
	if len(got) != want {
		t.Fatalf("%d frames of the flow, want %d", len(got), want)
	}
	for i, f := range got {
		if len(f.Frame) != AuditSnap || f.Len != 14+20+8+900 || (i > 0 && f.Time <= got[i-1].Time) {
			t.Fatalf("frame %d: %d bytes, wire %d, time %d", i, len(f.Frame), f.Len, f.Time)
		}
	}
	if got := a.framesOf(&k, 0, 4); len(got) != 4 {
		t.Fatalf("max 4: got %d", len(got))
	}
	k.LoPort = 1 // no such flow
	if got := a.framesOf(&k, 0, 8); len(got) != 0 {
		t.Fatalf("a flow never seen: %d frames", len(got))
	}
}

// BenchmarkAuditPush is what auditing adds per frame that reaches a worker.
func BenchmarkAuditPush(b *testing.B) {
	a := newAuditRing()
	f := udpFrame(2000, 1400)
	b.SetBytes(AuditSnap)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.push(f, int64(i))
	}
}
