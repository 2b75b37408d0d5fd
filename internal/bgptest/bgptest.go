// Package bgptest runs Debian's gobgpd as a test's router: in a namespace
// of its own, joined to the current one by a veth (Router.BoxAddr here,
// Router.Addr the router, AS 65000), taking AS 65001 from BoxAddr as a
// passive peer. Tests read its RIB with the gobgp CLI.
package bgptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// AS numbers of the router and of the box that peers with it.
const (
	BoxAS    = 65001
	RouterAS = 65000
)

// Router is a running gobgpd.
type Router struct {
	// Addresses of this side of the veth (the box's) and of the router:
	// a subnet of this test process's own, since go test runs packages
	// in parallel and the veth's side here is in the shared namespace.
	BoxAddr, Addr string
	t             *testing.T
	ns            string
	conf          string
	d             *exec.Cmd
	out           *testbin.Buffer
}

// Start starts gobgpd in a namespace of env; it skips the test when the
// gobgpd package is not installed (bench/deps.sh installs it).
func Start(t *testing.T, env *netnstest.Env) *Router {
	t.Helper()
	return StartWithPassword(t, env, "")
}

// StartWithPassword is Start with the session to the box protected by
// TCP MD5 (RFC 2385) with password, when it is not empty.
func StartWithPassword(t *testing.T, env *netnstest.Env, password string) *Router {
	t.Helper()
	for _, b := range []string{"gobgpd", "gobgp"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s (bench/deps.sh installs gobgpd)", b)
		}
	}
	pid := os.Getpid()
	subnet := fmt.Sprintf("10.%d.%d.", 200+pid%50, pid/50%256)
	box, router := subnet+"1", subnet+"2"
	rtr := env.NS("rtr")
	port := env.Veth("bgp", rtr, router+"/24", 1)
	env.Run("ip", "addr", "add", box+"/24", "dev", port)
	conf := filepath.Join(t.TempDir(), "gobgpd.toml")
	if err := os.WriteFile(conf, []byte(`[global.config]
  as = 65000
  router-id = "`+router+`"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "`+box+`"
    peer-as = 65001`+auth(password)+`
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
	r := &Router{BoxAddr: box, Addr: router, t: t, ns: rtr, conf: conf}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// auth is the neighbor's auth-password line, or nothing.
func auth(password string) string {
	if password == "" {
		return ""
	}
	return fmt.Sprintf("\n    auth-password = %q", password)
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
