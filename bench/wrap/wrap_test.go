package wrap

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Real captures from nDPI's test suite (testdata/ndpi/README.md): IPv4
// TCP BitTorrent, IPv4 UDP uTP, and IPv6 TCP, some cut by the snaplen.
var inputs = []string{"bittorrent.pcap", "bittorrent_utp.pcap", "http_ipv6.pcap"}

func corpus(name string) string { return filepath.Join("..", "..", "testdata", "ndpi", "pcap", name) }

// What each kind must leave in the decoder's Meta, per direction of a flow.
var want = map[string]struct {
	encap packet.Encap
	check func(m *packet.Meta, down bool) bool
}{
	PPPoE:   {packet.EncapPPPoE, func(m *packet.Meta, _ bool) bool { return m.Session == Session }},
	MPLS:    {packet.EncapMPLS, func(m *packet.Meta, down bool) bool { return m.Label == LabelUp+b2u(down) }},
	MPLSPW:  {packet.EncapMPLS, func(m *packet.Meta, down bool) bool { return m.Label == LabelUp+b2u(down) }},
	GRE:     {packet.EncapGRE, func(m *packet.Meta, _ bool) bool { return m.Key == GREKey }},
	ERSPAN2: {packet.EncapGRE | packet.EncapERSPAN, func(m *packet.Meta, _ bool) bool { return m.Key == ERSPANID }},
	GTPU: {packet.EncapGTPU, func(m *packet.Meta, down bool) bool {
		return m.TEID == TEIDUp && !down || m.TEID == TEIDDown && down
	}},
	VXLAN:   {packet.EncapVXLAN, func(m *packet.Meta, _ bool) bool { return m.VNI == VXLANVNI }},
	Geneve:  {packet.EncapGeneve, func(m *packet.Meta, _ bool) bool { return m.VNI == GeneveVNI }},
	IPinIP:  {packet.EncapIPinIP, func(m *packet.Meta, _ bool) bool { return m.TunnelSrc != m.Src }},
	IP6inIP: {packet.EncapIPinIP, func(m *packet.Meta, _ bool) bool { return m.TunnelSrc != m.Src }},
	QinQ3: {packet.EncapVLAN | packet.EncapQinQ, func(m *packet.Meta, _ bool) bool {
		return m.OuterVLAN == 100 && m.VLAN == 300
	}},
	PPP:   {packet.EncapPPP, func(*packet.Meta, bool) bool { return true }},
	CHDLC: {0, func(*packet.Meta, bool) bool { return true }},
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Every frame of real captures, wrapped in each encapsulation, decodes to
// the same inner flow (addresses, ports, protocol, payload and its wire
// length) as the bare frame, with the encapsulation and its ids; the two
// directions of a flow, riding the two outer directions, share one path.
func TestWrappedFramesDecodeToTheSameFlow(t *testing.T) {
	for _, kind := range Kinds() {
		for _, in := range inputs {
			out := filepath.Join(t.TempDir(), kind+"-"+in)
			if _, err := File(kind, corpus(in), out); err != nil {
				t.Fatalf("%s %s: %v", kind, in, err)
			}
			bare, wrapped := open(t, corpus(in)), open(t, out)
			paths := map[shard.Key]uint32{}
			initiator := map[shard.Key]packet.Addr16{}
			n := 0
			for {
				f1, l1, _, err1 := bare.Next()
				if errors.Is(err1, io.EOF) {
					break
				}
				f2, l2, _, err2 := wrapped.Next()
				if err1 != nil || err2 != nil {
					t.Fatalf("%s %s: read: %v %v", kind, in, err1, err2)
				}
				var a, b packet.Meta
				ra, rb := packet.Decode(l1, f1, &a), packet.Decode(l2, f2, &b)
				if ra != rb || ra != packet.OK && ra != packet.Fragment {
					if ra != rb {
						t.Fatalf("%s %s frame %d: bare %d, wrapped %d", kind, in, n, ra, rb)
					}
					continue
				}
				if a.Src != b.Src || a.Dst != b.Dst || a.Proto != b.Proto || a.SrcPort != b.SrcPort || a.DstPort != b.DstPort ||
					a.PayloadLen != b.PayloadLen || string(a.Payload) != string(b.Payload) {
					t.Fatalf("%s %s frame %d: inner flow differs:\nbare    %+v\nwrapped %+v", kind, in, n, a, b)
				}
				w := want[kind]
				if b.Encap&w.encap != w.encap {
					t.Fatalf("%s %s frame %d: encapsulation %v, want %v", kind, in, n, b.Encap, w.encap)
				}
				var k shard.Key
				k.Set(&b)
				k.PathLo, k.PathHi = 0, 0
				first, seen := initiator[k]
				if !seen {
					initiator[k] = b.Src
				}
				down := seen && first != b.Src
				if !w.check(&b, down) {
					t.Fatalf("%s %s frame %d (down %v): ids wrong: %+v", kind, in, n, down, b)
				}
				if p, ok := paths[k]; ok && p != b.Path {
					t.Fatalf("%s %s frame %d: path %#x, the other direction's %#x", kind, in, n, b.Path, p)
				}
				paths[k] = b.Path
				n++
			}
			if n < 40 {
				t.Fatalf("%s %s: only %d frames compared", kind, in, n)
			}
		}
	}
}

func open(t *testing.T, name string) *pcapsrc.Reader {
	t.Helper()
	r, err := pcapsrc.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A real BitTorrent capture classifies the same wrapped as bare: the same
// flows (inner addresses) with the same labels, and each record names its
// tunnel, and for IP tunnels the tunnel's endpoints.
func TestWrappedSwarmSameLabels(t *testing.T) {
	classify := func(name string) *shard.Result {
		r, err := dataplane.ClassifyFile(name, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}})
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		return r
	}
	bare := classify(corpus("bittorrent.pcap"))
	labels := map[string]string{}
	p2p := 0
	for _, f := range bare.Flows {
		labels[f.Proto+f.A+f.B] = f.Label
		if f.Label == "p2p" {
			p2p++
		}
	}
	tunnels := map[string]string{PPPoE: "pppoe", MPLS: "mpls", MPLSPW: "mpls", GRE: "gre", ERSPAN2: "erspan",
		GTPU: "gtpu", VXLAN: "vxlan", Geneve: "geneve", IPinIP: "ipip", IP6inIP: "ipip", PPP: "ppp"}
	for _, kind := range Kinds() {
		out := filepath.Join(t.TempDir(), kind+".pcap")
		if _, err := File(kind, corpus("bittorrent.pcap"), out); err != nil {
			t.Fatal(err)
		}
		res := classify(out)
		if len(res.Flows) != len(bare.Flows) {
			t.Errorf("%s: %d flows, bare %d", kind, len(res.Flows), len(bare.Flows))
		}
		for _, f := range res.Flows {
			if l, ok := labels[f.Proto+f.A+f.B]; !ok || l != f.Label {
				t.Errorf("%s: flow %s %s %s is %s, bare %q", kind, f.Proto, f.A, f.B, f.Label, l)
			}
			if f.Tunnel != tunnels[kind] {
				t.Errorf("%s: record's tunnel %q, want %q", kind, f.Tunnel, tunnels[kind])
			}
			ends := map[string]bool{"10.200.0.1": true, "10.200.0.2": true, "fd00:200::1": true, "fd00:200::2": true}
			ipTunnel := kind == GRE || kind == ERSPAN2 || kind == GTPU || kind == VXLAN || kind == Geneve || kind == IPinIP || kind == IP6inIP
			if ipTunnel && (!ends[f.TunnelSrc] || !ends[f.TunnelDst] || f.TunnelSrc == f.TunnelDst) {
				t.Errorf("%s: record's tunnel endpoints %q %q", kind, f.TunnelSrc, f.TunnelDst)
			}
			if !ipTunnel && f.TunnelSrc != "" {
				t.Errorf("%s: tunnel endpoints %q on a tunnel without IP", kind, f.TunnelSrc)
			}
		}
	}
	if p2p < 20 {
		t.Fatalf("the bare capture has only %d p2p flows", p2p)
	}
}

// tshark's dissectors read the wrapped frames as what they claim to be, down
// to the inner BitTorrent, with the ids the decoder reads. bench/deps.sh
// installs tshark (.ci/run runs it).
func TestTsharkDissectsWrapped(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed (bash bench/deps.sh)")
	}
	cases := map[string]struct{ protocols, field, values string }{
		PPPoE:   {"eth:ethertype:pppoes:ppp:ip:tcp:bittorrent", "pppoe.session_id", "0x1234"},
		MPLS:    {"eth:ethertype:mpls:ip:tcp:bittorrent", "mpls.label", "2000,1000;2001,1001"},
		MPLSPW:  {"mpls:pwethheuristic:pwethcw:eth:ethertype:ip:tcp:bittorrent", "mpls.label", "2000,1000;2001,1001"},
		GRE:     {"eth:ethertype:ip:gre:ip:tcp:bittorrent", "gre.key", "0x0000abcd"},
		ERSPAN2: {"eth:ethertype:ip:gre:erspan:eth:ethertype:ip:tcp:bittorrent", "erspan.spanid", "42"},
		GTPU:    {"eth:ethertype:ip:udp:gtp:ip:tcp:bittorrent", "gtp.teid", "0x00001111;0x00002222"},
		VXLAN:   {"eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp:bittorrent", "vxlan.vni", "5000"},
		Geneve:  {"eth:ethertype:ip:udp:geneve:eth:ethertype:ip:tcp:bittorrent", "geneve.vni", "0x001770"},
		IPinIP:  {"eth:ethertype:ip:ip:tcp:bittorrent", "ip.src", "10.200.0.1,192.168.1.3;10.200.0.2,82.58.216.115"},
		IP6inIP: {"eth:ethertype:ipv6:ip:tcp:bittorrent", "ipv6.src", "fd00:200::1;fd00:200::2"},
		QinQ3:   {"eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:vlan:ethertype:ip:tcp:bittorrent", "vlan.id", "200,300"},
		PPP:     {"ppp:ip:tcp:bittorrent", "ppp.protocol", "0x0021"},
		CHDLC:   {"chdlc:ip:tcp:bittorrent", "chdlc.protocol", "0x0800"},
	}
	for _, kind := range Kinds() {
		c := cases[kind]
		out := filepath.Join(t.TempDir(), kind+".pcap")
		if _, err := File(kind, corpus("bittorrent.pcap"), out); err != nil {
			t.Fatal(err)
		}
		// Frames 4 and 5 of bittorrent.pcap: the handshake, one each way.
		got, err := exec.Command("tshark", "-r", out, "-Y", "bittorrent", "-c", "2", "-T", "fields",
			"-E", "separator=|", "-e", "frame.protocols", "-e", c.field).Output()
		if err != nil {
			t.Fatalf("%s: tshark: %v", kind, err)
		}
		lines := strings.Split(strings.TrimSpace(string(got)), "\n")
		var vals []string
		for _, l := range lines {
			proto, val, _ := strings.Cut(l, "|")
			if !strings.HasSuffix(proto, c.protocols) {
				t.Errorf("%s: tshark dissects %q, want ...%q", kind, proto, c.protocols)
			}
			vals = append(vals, val)
		}
		if v := strings.Join(dedup(vals), ";"); v != c.values {
			t.Errorf("%s: tshark %s = %q, want %q", kind, c.field, v, c.values)
		}
	}
}

func dedup(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

// Real tunnelled captures in nDPI's corpus decode to their inner flows:
// VXLAN (VNI 1111, an inner VLAN), GTP-U behind two VLAN tags, Teredo.
func TestCorpusTunnels(t *testing.T) {
	for _, c := range []struct {
		file  string
		encap packet.Encap
		inner string // an inner source address the capture has
	}{
		{"vxlan.pcap", packet.EncapVXLAN, "10.10.20.4"},
		{"dtls.pcap", packet.EncapGTPU | packet.EncapQinQ, "10.191.227.13"},
		{"rtmp.pcap", packet.EncapGTPU, "10.140.80.204"},
		{"teredo.pcap", packet.EncapTeredo, "fe80::8000:f227:3d77:e3b3"},
	} {
		r := open(t, corpus(c.file))
		found := 0
		for {
			f, lt, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var m packet.Meta
			if res := packet.Decode(lt, f, &m); res != packet.OK && res != packet.OtherL4 {
				continue
			}
			if m.Encap&c.encap == c.encap && (m.SrcAddr().String() == c.inner || m.DstAddr().String() == c.inner) {
				found++
			}
		}
		if found == 0 {
			t.Errorf("%s: no frame decoded through %v to %s", c.file, c.encap, c.inner)
		}
	}
}

// Two subscribers with the same private address in two VXLAN VNIs are two
// hosts: 192.168.1.3 torrenting in VNI 5000 (nDPI's bittorrent.pcap) and
// 192.168.1.3 browsing in VNI 6001 (chrome.pcap, its client 192.168.1.178
// renamed). Only the first is p2p, and none of the second's flows is.
func TestSameAddressInTwoVNIsIsTwoHosts(t *testing.T) {
	type rec struct {
		ts    time.Time
		data  []byte
		wire  int
		first bool
	}
	var recs []rec
	wrapAll := func(name string, vni uint32, rename func([]byte), first bool) {
		w := newWrapper(VXLAN)
		w.vni = vni
		r := open(t, corpus(name))
		var t0 time.Time
		for {
			f, lt, ts, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if t0.IsZero() {
				t0 = ts
			}
			f = append([]byte(nil), f...)
			rename(f)
			data, wire, ok, err := w.wrap(lt, f)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				// Both captures start at the same instant.
				recs = append(recs, rec{time.Unix(1700000000, 0).Add(ts.Sub(t0)), data, wire, first})
			}
		}
	}
	wrapAll("bittorrent.pcap", 5000, func([]byte) {}, true)
	from, to := netip.MustParseAddr("192.168.1.178").As4(), netip.MustParseAddr("192.168.1.3").As4()
	wrapAll("chrome.pcap", 6001, func(f []byte) {
		if len(f) >= 34 && f[12] == 0x08 && f[13] == 0 {
			for _, off := range []int{26, 30} {
				if [4]byte(f[off:off+4]) == from {
					copy(f[off:], to[:])
				}
			}
		}
	}, false)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].ts.Before(recs[j].ts) })
	out := filepath.Join(t.TempDir(), "two-subscribers.pcap")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	pw := pcapgo.NewWriterNanos(f)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := pw.WritePacket(gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: r.wire}, r.data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	res, err := dataplane.ClassifyFile(out, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}})
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	var torrenting, browsing *shard.HostRecord
	for i, h := range res.Hosts {
		if h.Host == "192.168.1.3" {
			if h.Label == "p2p" {
				torrenting = &res.Hosts[i]
			} else {
				browsing = &res.Hosts[i]
			}
		}
	}
	if torrenting == nil || browsing == nil || torrenting.Path == browsing.Path {
		t.Fatalf("want 192.168.1.3 twice, p2p on one path and not on the other; hosts: %+v", res.Hosts)
	}
	browsed := 0
	for _, fl := range res.Flows {
		if fl.TunnelID == 6001 {
			browsed++
			if fl.Label == "p2p" {
				t.Errorf("the browsing subscriber's flow %s %s %s is p2p", fl.Proto, fl.A, fl.B)
			}
		}
	}
	if browsed < 3 {
		t.Fatalf("only %d flows of the browsing subscriber", browsed)
	}
	t.Logf("torrenting %+v; browsing %+v (%d flows)", *torrenting, *browsing, browsed)
}

// The VXLAN swarm capture.sh records (transmission-daemon, MSE required,
// HTTPS tracker, inside VNI 77, recorded on the underlay): every peer flow
// with >= 4 payload packets is p2p with its overlay addresses and the VNI
// in the record, the overlay's HTTPS is not; and its bare capture
// (unwrapped) wrapped in PPPoE, MPLS, GRE and GTP-U gives the same peer
// flows p2p with each tunnel's id.
func TestVXLANSwarmAndItsBareCaptureWrapped(t *testing.T) {
	capture := filepath.Join("..", "..", "testdata", "captures", "vxlan-swarm.pcap")
	classify := func(name string) *shard.Result {
		r, err := dataplane.ClassifyFile(name, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}})
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		return r
	}
	isPeer := func(f shard.FlowRecord) bool {
		return strings.HasPrefix(f.A, "192.168.77.1") && len(f.A) > len("192.168.77.1:") && f.A[12] != ':' &&
			strings.HasPrefix(f.B, "192.168.77.1") && f.B[12] != ':'
	}
	peers := map[string]bool{}
	res := classify(capture)
	for _, f := range res.Flows {
		if f.Tunnel != "vxlan" || f.TunnelID != 77 {
			t.Errorf("flow %s %s: tunnel %q %d, want vxlan 77", f.A, f.B, f.Tunnel, f.TunnelID)
		}
		switch {
		case isPeer(f) && f.PayloadPackets >= 4:
			if f.Label != "p2p" {
				t.Errorf("peer flow %s %s is %s", f.A, f.B, f.Label)
			}
			peers[f.Proto+f.A+f.B] = true
		case !isPeer(f) && f.Label == "p2p":
			t.Errorf("normal flow %s %s is p2p", f.A, f.B)
		}
	}
	if len(peers) < 2 {
		t.Fatalf("only %d peer flows in %s", len(peers), capture)
	}
	bare := filepath.Join(t.TempDir(), "bare.pcap")
	if _, err := Unwrap(capture, bare); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{PPPoE: "pppoe", MPLS: "mpls", GRE: "gre", GTPU: "gtpu"}
	for _, kind := range []string{PPPoE, MPLS, GRE, GTPU} {
		out := filepath.Join(t.TempDir(), kind+".pcap")
		if _, err := File(kind, bare, out); err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, f := range classify(out).Flows {
			if peers[f.Proto+f.A+f.B] {
				got++
				if f.Label != "p2p" || f.Tunnel != ids[kind] || f.TunnelID == 0 && kind != PPPoE {
					t.Errorf("%s: peer flow %s %s: %s, tunnel %q %d", kind, f.A, f.B, f.Label, f.Tunnel, f.TunnelID)
				}
			}
		}
		if got != len(peers) {
			t.Errorf("%s: %d of %d peer flows found", kind, got, len(peers))
		}
	}
}
