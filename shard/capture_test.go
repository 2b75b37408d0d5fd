package shard

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// capture is a Source over a pcap or pcapng file read with gopacket: the
// engine's tests replay captures without dataplane/pcapsrc, which imports
// this package (the layering test forbids the arrow back).
type capture struct {
	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
	link packet.LinkType
}

func openCapture(tb testing.TB, path string) *capture {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return newCapture(tb, f)
}

func newCapture(tb testing.TB, r io.Reader) *capture {
	tb.Helper()
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		tb.Fatal(err)
	}
	c := &capture{}
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		if c.ng, err = pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true}); err == nil {
			c.link = packet.LinkType(c.ng.LinkType())
		}
	} else if c.pcap, err = pcapgo.NewReader(br); err == nil {
		c.link = packet.LinkType(c.pcap.LinkType())
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (c *capture) Next() ([]byte, packet.LinkType, time.Time, error) {
	var (
		frame []byte
		ci    gopacket.CaptureInfo
		err   error
	)
	link := c.link
	if c.pcap != nil {
		frame, ci, err = c.pcap.ZeroCopyReadPacketData()
	} else {
		frame, ci, err = c.ng.ZeroCopyReadPacketData()
		if len(ci.AncillaryData) > 0 {
			if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				link = packet.LinkType(lt)
			}
		}
	}
	return frame, link, ci.Timestamp, err
}
