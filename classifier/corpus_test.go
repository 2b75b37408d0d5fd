package classifier

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/dataplane/packet"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
)

// payloads returns copies of the L4 payloads (with their metadata) of the
// packets in a corpus pcap for which keep returns true, in file order.
func payloads(t testing.TB, pcap string, keep func(m *packet.Meta) bool) []packet.Meta {
	t.Helper()
	r, err := pcapsrc.Open(filepath.Join("..", "testdata", "ndpi", "pcap", pcap))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []packet.Meta
	for {
		frame, link, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var m packet.Meta
		if packet.Decode(link, frame, &m) != packet.OK || len(m.Payload) == 0 || !keep(&m) {
			continue
		}
		m.Payload = append([]byte(nil), m.Payload...)
		out = append(out, m)
	}
}

func port(p uint16) func(m *packet.Meta) bool {
	return func(m *packet.Meta) bool { return m.SrcPort == p || m.DstPort == p }
}

func first(t testing.TB, pcap string, keep func(m *packet.Meta) bool) []byte {
	t.Helper()
	ps := payloads(t, pcap, keep)
	if len(ps) == 0 {
		t.Fatalf("%s: no packet matches", pcap)
	}
	return ps[0].Payload
}
