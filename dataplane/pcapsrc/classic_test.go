package pcapsrc

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// classicFile writes a classic pcap with the given magic, byte order,
// version and record-header size around frames, each stamped t0+i ms.
func classicFile(order binary.ByteOrder, magic uint32, minor uint16, extra int, frames ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	order.PutUint32(h[0:], magic)
	order.PutUint16(h[4:], 2)
	order.PutUint16(h[6:], minor)
	order.PutUint32(h[16:], 65535)
	order.PutUint32(h[20:], 1|0x10000000) // Ethernet, with an FCS-length bit set
	b.Write(h)
	for i, f := range frames {
		r := make([]byte, 16+extra)
		order.PutUint32(r[0:], 1700000000)
		frac := uint32(i) * 1000 // µs
		if magic == magicNano {
			frac *= 1000
		}
		order.PutUint32(r[4:], frac)
		incl, orig := uint32(len(f)), uint32(len(f)+100)
		if minor < 3 {
			incl, orig = orig, incl
		}
		order.PutUint32(r[8:], incl)
		order.PutUint32(r[12:], orig)
		b.Write(r)
		b.Write(f)
	}
	return b.Bytes()
}

// Classic pcap in every variant real test suites carry reads the same
// frames and times: both byte orders, micro- and nanosecond, minor versions
// 0-4 (before 2.3 the two lengths are swapped), Kuznetzov's 24-byte records.
func TestClassicVariants(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 74), bytes.Repeat([]byte{3}, 1514)}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, magic := range []uint32{magicMicro, magicNano, magicKuznetzov} {
			for minor := uint16(0); minor <= 4; minor++ {
				extra := 0
				if magic == magicKuznetzov {
					extra = 8
				}
				r, err := newReader("x", bytes.NewReader(classicFile(order, magic, minor, extra, frames...)))
				if err != nil {
					t.Fatalf("%v %x 2.%d: %v", order, magic, minor, err)
				}
				if r.link != 1 {
					t.Fatalf("link %d", r.link)
				}
				for i, want := range frames {
					got, _, ts, err := r.Next()
					if err != nil || !bytes.Equal(got, want) || ts.Sub(time.Unix(1700000000, 0)) != time.Duration(i)*time.Millisecond {
						t.Fatalf("%v %x 2.%d frame %d: %d bytes, %v, %v", order, magic, minor, i, len(got), ts, err)
					}
				}
				if _, _, _, err := r.Next(); err == nil || err.Error() != "EOF" {
					t.Fatalf("%v %x 2.%d: end: %v", order, magic, minor, err)
				}
			}
		}
	}
}
