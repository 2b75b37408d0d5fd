package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	api "github.com/osrg/gobgp/v3/api"
	bgpserver "github.com/osrg/gobgp/v3/pkg/server"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/cluster"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// Two `swarmguard run` bridges sharing their bans through the real NATS
// server (cluster.nats): a real swarm replayed through box A gets its
// peers banned on A, and within 2 s in box B's kernel ban map, though no
// packet of the swarm ever crossed B.
func TestTwoBoxesShareBans(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	// The operator's router: a real GoBGP speaker on loopback that box A
	// peers with (bgp.peers).
	bgpPort := freePort(t)
	rt := bgpserver.NewBgpServer()
	go rt.Serve()
	t.Cleanup(rt.Stop)
	if err := rt.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "10.255.0.1", ListenPort: int32(bgpPort), ListenAddresses: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{Conf: &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001}, Transport: &api.Transport{PassiveMode: true}}}); err != nil {
		t.Fatal(err)
	}

	capFile, err := filepath.Abs("../../testdata/captures/encrypted.pcap")
	if err != nil {
		t.Fatal(err)
	}
	env := netnstest.New(t)
	bin := testbin.Build(t)
	dir := t.TempDir()
	type box struct {
		name, gen, pin string
		metrics        int
		sg             *child
	}
	var boxes []*box
	for i, name := range []string{"box-a", "box-b"} {
		gen, sink := env.NS(fmt.Sprintf("gen%d", i)), env.NS(fmt.Sprintf("sink%d", i))
		pa := env.Veth(fmt.Sprintf("a%d", i), gen, fmt.Sprintf("10.99.%d.1/24", 80+i), 1)
		pb := env.Veth(fmt.Sprintf("b%d", i), sink, fmt.Sprintf("10.99.%d.2/24", 80+i), 1)
		for _, n := range []string{gen, sink} {
			if out, err := env.Exec(n, "ethtool", "-K", "eth0", "gro", "on", "tx", "off"); err != nil {
				t.Fatalf("ethtool: %v %s", err, out)
			}
		}
		pin := fmt.Sprintf("/sys/fs/bpf/sgcl%d%d", i, time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(pin) })
		conf := filepath.Join(dir, name+".yaml")
		mport := freePort(t)
		body := fmt.Sprintf(`interfaces:
  bridge: [%s, %s]
kernel:
  pin: %s
log:
  file: %s
metrics:
  listen: 127.0.0.1:%d
status:
  socket: ""
cluster:
  nats: [%s]
  box: %s
`, pa, pb, pin, filepath.Join(dir, name+".json"), mport, ns.ClientURL(), name)
		if i == 0 {
			body += fmt.Sprintf("bgp:\n  asn: 65001\n  router_id: 10.255.0.2\n  peers: [\"127.0.0.1:%d@65000\"]\n", bgpPort)
		}
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sg := start(t, bin, "run", "--config", conf)
		if !waitFor(&sg.out, "sharing bans", 30*time.Second) || !waitFor(&sg.out, "running", 30*time.Second) {
			t.Skipf("%s did not start (no XDP here?): %s", name, sg.out.String())
		}
		boxes = append(boxes, &box{name: name, gen: gen, pin: pin, metrics: mport, sg: sg})
	}
	a, b := boxes[0], boxes[1]
	out, err := exec.Command("ip", "netns", "exec", a.gen, bin, "bench", "replay", "--iface", "eth0", "--speed", "4", "--pad", "--timeout", "120s", capFile).CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v %s", err, out)
	}
	list := func(pin string) map[string]bool {
		bans, err := bpf.OpenBans(pin)
		if err != nil {
			t.Fatal(err)
		}
		defer bans.Close()
		l, err := bans.List()
		if err != nil {
			t.Fatal(err)
		}
		now, m := bpf.Monotonic(), map[string]bool{}
		for a, until := range l {
			if until > now {
				m[a.String()] = true
			}
		}
		return m
	}
	var onA map[string]bool
	for end := time.Now().Add(10 * time.Second); len(onA) == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		onA = list(a.pin)
	}
	if len(onA) == 0 {
		t.Fatalf("box A banned nobody:\n%s", a.sg.out.String())
	}
	seen := time.Now()
	var onB map[string]bool
	for end := seen.Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if onB = list(b.pin); len(onB) >= len(onA) {
			break
		}
	}
	for p := range onA {
		if !onB[p] {
			t.Fatalf("2 s after box A banned %v, box B has %v", onA, onB)
		}
	}
	t.Logf("box A banned %d peers; all in box B's kernel map %v after A's were seen", len(onA), time.Since(seen).Round(time.Millisecond))
	// The router has box A's bans as /32s with the BLACKHOLE community.
	routes := map[string]bool{}
	for end := time.Now().Add(10 * time.Second); len(routes) < len(onA) && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		clear(routes)
		rt.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}, func(d *api.Destination) {
			for _, p := range d.Paths {
				for _, a := range p.Pattrs {
					var c api.CommunitiesAttribute
					if a.UnmarshalTo(&c) == nil && slices.Contains(c.Communities, cluster.Blackhole) {
						routes[strings.TrimSuffix(d.Prefix, "/32")] = true
					}
				}
			}
		})
	}
	for p := range onA {
		if !routes[p] {
			t.Fatalf("the router's blackhole routes %v lack box A's ban %s", routes, p)
		}
	}
	// Box B holds box A's banned peers as reputed peers too (evidence for
	// its own flows to them, were they not banned).
	reputed := 0.0
	for end := time.Now().Add(10 * time.Second); reputed < float64(len(onA)) && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", b.metrics)); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, "swarmguard_reputed_peers "); ok {
					reputed, _ = strconv.ParseFloat(v, 64)
				}
			}
		}
	}
	if reputed < float64(len(onA)) {
		t.Fatalf("box B holds %v reputed peers, want %d", reputed, len(onA))
	}
	// And box A's ban events are in the stream for consumers.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var banEvents uint64
	for banEvents < uint64(len(onA)) && ctx.Err() == nil {
		if st, err := js.Stream(ctx, cluster.EventStream); err == nil {
			if info, err := st.Info(ctx, jetstream.WithSubjectFilter("sg.events.box-a.ban")); err == nil {
				banEvents = info.State.Subjects["sg.events.box-a.ban"]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if banEvents < uint64(len(onA)) {
		t.Fatalf("%d ban events of box A in %s, want %d", banEvents, cluster.EventStream, len(onA))
	}
}
