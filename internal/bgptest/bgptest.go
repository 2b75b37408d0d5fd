// Package bgptest runs Debian's gobgpd as a test's router: in a namespace
// of its own, joined to the current one by a veth (10.99.90.1 here,
// 10.99.90.2 the router, AS 65000), taking AS 65001 from 10.99.90.1 as a
// passive peer. Tests read its RIB with the gobgp CLI.
package bgptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// Addresses and AS numbers of the router and of the box that peers with it.
const (
	BoxAddr    = "10.99.90.1"
	RouterAddr = "10.99.90.2"
	BoxAS      = 65001
	RouterAS   = 65000
)

// Router is a running gobgpd.
type Router struct {
	t    *testing.T
	ns   string
	conf string
	d    *exec.Cmd
	out  *testbin.Buffer
}

// Start starts gobgpd in a namespace of env; it skips the test when the
// gobgpd package is not installed (bench/deps.sh installs it).
func Start(t *testing.T, env *netnstest.Env) *Router {
	t.Helper()
	for _, b := range []string{"gobgpd", "gobgp"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s (bench/deps.sh installs gobgpd)", b)
		}
	}
	rtr := env.NS("rtr")
	port := env.Veth("bgp", rtr, RouterAddr+"/24", 1)
	env.Run("ip", "addr", "add", BoxAddr+"/24", "dev", port)
	conf := filepath.Join(t.TempDir(), "gobgpd.toml")
	if err := os.WriteFile(conf, []byte(`[global.config]
  as = 65000
  router-id = "10.99.90.2"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.99.90.1"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Router{t: t, ns: rtr, conf: conf}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *Router) start() {
	r.out = &testbin.Buffer{}
	r.d = exec.Command("ip", "netns", "exec", r.ns, "gobgpd", "-f", r.conf, "--api-hosts", "127.0.0.1:50051", "-l", "warn")
	r.d.Stdout, r.d.Stderr = r.out, r.out
	if err := r.d.Start(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *Router) stop() {
	r.d.Process.Kill()
	r.d.Wait()
	r.t.Log(r.out.String())
}

// Restart kills gobgpd and starts it again: every session resets, and its
// RIB starts empty.
func (r *Router) Restart() {
	r.stop()
	r.start()
}

// RIB is `gobgp global rib -a family -j` (family ipv4 or ipv6).
func (r *Router) RIB(family string) string {
	b, _ := exec.Command("ip", "netns", "exec", r.ns, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "-a", family, "-j").CombinedOutput()
	return string(b)
}

// BlackholeJSON is the BLACKHOLE community (65535:666) as the CLI's JSON
// writes it.
const BlackholeJSON = "4294902426"
