package replay

import (
	"encoding/binary"
	"testing"
)

// ipv4Frame is an Ethernet+IPv4 frame cut to keep bytes, whose IP header
// says wire bytes.
func ipv4Frame(wire, keep int) []byte {
	f := make([]byte, 14+wire)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14] = 0x45
	binary.BigEndian.PutUint16(f[16:], uint16(wire))
	for i := 34; i < len(f); i++ {
		f[i] = byte(i)
	}
	return f[:keep]
}

func TestPadToWireRestoresLengthAndKeepsBytes(t *testing.T) {
	buf := make([]byte, 0, 1<<16)
	cut := ipv4Frame(1500, 256)
	got := padToWire(cut, buf)
	if len(got) != 14+1500 || string(got[:256]) != string(cut) {
		t.Fatalf("padded to %d bytes, first 256 kept: %v", len(got), string(got[:256]) == string(cut))
	}
	for _, b := range got[256:] {
		if b != 0 {
			t.Fatal("padding is not zero")
		}
	}
	whole := ipv4Frame(200, 214)
	if got := padToWire(whole, buf); len(got) != 214 {
		t.Fatalf("a whole frame changed length: %d", len(got))
	}
}

func FuzzPadToWire(f *testing.F) {
	f.Add(ipv4Frame(1500, 256))
	f.Add(ipv4Frame(60, 74))
	f.Add([]byte{})
	buf := make([]byte, 0, 1<<16)
	f.Fuzz(func(t *testing.T, b []byte) {
		got := padToWire(b, buf)
		if len(got) < len(b) || string(got[:len(b)]) != string(b) {
			t.Fatalf("padToWire lost bytes: %d -> %d", len(b), len(got))
		}
	})
}
