package cluster

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/swarmguard/swarmguard/internal/bgptest"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// router is a real GoBGP speaker standing in for the operator's router:
// it listens on a loopback port and takes the box as a peer.
func router(t *testing.T, port int32) *server.BgpServer {
	t.Helper()
	r := server.NewBgpServer(server.LoggerOption(&bgpLog{w: testLog(t)}))
	go r.Serve()
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "10.255.0.1", ListenPort: port, ListenAddresses: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatal(err)
	}
	return r
}

// testLog keeps the speakers' log lines (they may write after the test
// ends, when t.Log would panic); the test prints them at its end.
func testLog(t *testing.T) *testbin.Buffer {
	l := &testbin.Buffer{}
	t.Cleanup(func() { t.Log(l.String()) })
	return l
}

// rib is the router's routes: prefix -> whether it carries BLACKHOLE.
func rib(t *testing.T, r *server.BgpServer) map[string]bool {
	out := map[string]bool{}
	for _, fam := range []*api.Family{{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, {Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}} {
		err := r.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			for _, p := range d.Paths {
				bh := false
				for _, a := range p.Pattrs {
					var c api.CommunitiesAttribute
					if a.UnmarshalTo(&c) == nil {
						for _, v := range c.Communities {
							bh = bh || v == Blackhole
						}
					}
				}
				out[d.Prefix] = bh
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Bans announced as RTBH routes reach a real BGP router with the
// BLACKHOLE community, IPv4 and IPv6, and are withdrawn; past the cap a
// ban is not announced, counted.
func TestAnnouncerRTBH(t *testing.T) {
	port := int32(testbin.FreePort(t))
	r := router(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := StartBGP(ctx, BGPConfig{ASN: 65001, RouterID: "10.255.0.2", Peers: []BGPPeer{{Address: "127.0.0.1", ASN: 65000, Port: uint32(port)}}, Max: 2, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	v4, v6, third := netip.MustParseAddr("198.51.100.60"), netip.MustParseAddr("2001:db8::60"), netip.MustParseAddr("198.51.100.61")
	for _, p := range []netip.Addr{v4, v6, third} {
		if err := a.Announce(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	want := func(cond func(map[string]bool) bool) map[string]bool {
		var got map[string]bool
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if got = rib(t, r); cond(got) {
				return got
			}
		}
		return got
	}
	got := want(func(m map[string]bool) bool { return m["198.51.100.60/32"] && m["2001:db8::60/128"] })
	if !got["198.51.100.60/32"] || !got["2001:db8::60/128"] {
		t.Fatalf("the router's RIB after 30 s: %v", got)
	}
	if _, ok := got["198.51.100.61/32"]; ok || a.OverMax.Load() != 1 {
		t.Fatalf("the third ban was announced past the cap of 2 (over max %d): %v", a.OverMax.Load(), got)
	}
	if err := a.Withdraw(ctx, v4); err != nil {
		t.Fatal(err)
	}
	got = want(func(m map[string]bool) bool { _, ok := m["198.51.100.60/32"]; return !ok })
	if _, ok := got["198.51.100.60/32"]; ok || !got["2001:db8::60/128"] {
		t.Fatalf("after the withdrawal the router has %v", got)
	}
}

// The operator's router is Debian's gobgpd in a namespace of its own, the
// box's speaker peering with it over a veth: bans announced show in the
// router's RIB (`gobgp global rib`) with the BLACKHOLE community, and go
// when withdrawn.
func TestAnnouncerToDebianGobgpd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces)")
	}
	rt := bgptest.Start(t, netnstest.New(t))
	rib := rt.RIB
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := StartBGP(ctx, BGPConfig{ASN: bgptest.BoxAS, RouterID: rt.BoxAddr, Peers: []BGPPeer{{Address: rt.Addr, ASN: bgptest.RouterAS}}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	v4, v6 := netip.MustParseAddr("198.51.100.70"), netip.MustParseAddr("2001:db8::70")
	for _, p := range []netip.Addr{v4, v6} {
		if err := a.Announce(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	const bh = bgptest.BlackholeJSON
	has := func(family, prefix string) bool {
		r := rib(family)
		return strings.Contains(r, prefix) && strings.Contains(r, bh)
	}
	ok := false
	for end := time.Now().Add(30 * time.Second); !ok && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		ok = has("ipv4", "198.51.100.70/32") && has("ipv6", "2001:db8::70/128")
	}
	if !ok {
		t.Fatalf("gobgpd's RIB after 30 s:\n%s\n%s", rib("ipv4"), rib("ipv6"))
	}
	if err := a.Withdraw(ctx, v4); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); strings.Contains(rib("ipv4"), "198.51.100.70/32") && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(rib("ipv4"), "198.51.100.70/32") {
		t.Fatalf("withdrawn, still in gobgpd's RIB:\n%s", rib("ipv4"))
	}
}

// A session with TCP MD5 (bgp.password): a box with the router's password
// gets its ban into the router's RIB; a box with another password gets no
// session, and nothing of it reaches the router.
func TestAnnouncerWithMD5(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces)")
	}
	rt := bgptest.StartWithPassword(t, netnstest.New(t), "swarm-guard-md5")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	announce := func(password string, p netip.Addr) *Announcer {
		a, err := StartBGP(ctx, BGPConfig{ASN: bgptest.BoxAS, RouterID: rt.BoxAddr, Log: testLog(t),
			Peers: []BGPPeer{{Address: rt.Addr, ASN: bgptest.RouterAS, Password: password}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Announce(ctx, p); err != nil {
			t.Fatal(err)
		}
		return a
	}
	wrong, right := netip.MustParseAddr("198.51.100.71"), netip.MustParseAddr("198.51.100.72")
	a := announce("not-the-password", wrong)
	// The speaker tries to connect every 5 s: two attempts refused.
	time.Sleep(12 * time.Second)
	if r := rt.RIB("ipv4"); strings.Contains(r, wrong.String()) {
		t.Fatalf("a box with the wrong MD5 password got its route to the router:\n%s", r)
	}
	a.Close()
	a = announce("swarm-guard-md5", right)
	defer a.Close()
	ok := false
	for end := time.Now().Add(30 * time.Second); !ok && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		ok = strings.Contains(rt.RIB("ipv4"), right.String()+"/32")
	}
	if !ok {
		t.Fatalf("with the router's MD5 password, no route after 30 s:\n%s", rt.RIB("ipv4"))
	}
}
