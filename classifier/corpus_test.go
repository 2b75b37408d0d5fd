package classifier

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// payloads returns the packets with payload of a corpus pcap for which keep
// returns true, in file order, as the recognizers see them. The classifier
// is the leaf of the project's imports, so its tests decode with gopacket
// rather than with the engine's decoder.
func payloads(t testing.TB, pcap string, keep func(m *Packet) bool) []Packet {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "ndpi", "pcap", pcap))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		t.Fatal(err)
	}
	var (
		src  gopacket.ZeroCopyPacketDataSource
		link layers.LinkType
	)
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		src, link = ng, ng.LinkType()
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		src, link = r, r.LinkType()
	}
	var out []Packet
	for {
		frame, _, err := src.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		m, ok := decode(frame, link)
		if !ok || len(m.Payload) == 0 || !keep(&m) {
			continue
		}
		m.Payload = append([]byte(nil), m.Payload...)
		out = append(out, m)
	}
}

func decode(frame []byte, link layers.LinkType) (m Packet, ok bool) {
	p := gopacket.NewPacket(frame, link, gopacket.NoCopy)
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.FragOffset != 0 {
			return m, false
		}
		m.Dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		m.Dst, _ = netip.AddrFromSlice(ip.DstIP)
		m.IPv6 = true
	default:
		return m, false
	}
	switch l4 := p.TransportLayer().(type) {
	case *layers.TCP:
		m.Proto, m.SrcPort, m.DstPort, m.Payload = ProtoTCP, uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
	case *layers.UDP:
		m.Proto, m.SrcPort, m.DstPort, m.Payload = ProtoUDP, uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
	default:
		return m, false
	}
	return m, true
}

func port(p uint16) func(m *Packet) bool {
	return func(m *Packet) bool { return m.SrcPort == p || m.DstPort == p }
}

func first(t testing.TB, pcap string, keep func(m *Packet) bool) []byte {
	t.Helper()
	ps := payloads(t, pcap, keep)
	if len(ps) == 0 {
		t.Fatalf("%s: no packet matches", pcap)
	}
	return ps[0].Payload
}
