// Package netnstest (test-only: imported from _test.go files alone, hence
// internal/) builds throwaway network namespaces and veth pairs for
// tests and benchmarks, and removes them (also when a test fails). Every
// address it assigns is in 10.99.0.0/16 inside namespaces it created; no
// namespace gets a default route.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Env is a set of namespaces and links owned by one test.
type Env struct {
	t      testing.TB
	prefix string
	nss    []string
	links  []string
}

// New makes an environment whose names start with a short unique prefix.
// It skips the test without root or without ip(8).
func New(t testing.TB) *Env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	e := &Env{t: t, prefix: fmt.Sprintf("sg%d", time.Now().UnixNano()%1_000_000)}
	t.Cleanup(e.cleanup)
	return e
}

// Name returns a name unique to this environment.
func (e *Env) Name(s string) string { return e.prefix + s }

// Run runs a command and fails the test on error.
func (e *Env) Run(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NS creates a namespace with loopback up.
func (e *Env) NS(name string) string {
	e.t.Helper()
	ns := e.Name(name)
	e.Run("ip", "netns", "add", ns)
	e.nss = append(e.nss, ns)
	e.Run("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Veth creates a veth pair: port (in the current namespace, up, no address)
// and eth0 inside ns with addr (CIDR), up. queues sets the number of queues.
func (e *Env) Veth(port, ns, addr string, queues int) string {
	e.t.Helper()
	port = e.Name(port)
	q := fmt.Sprint(max(queues, 1))
	e.Run("ip", "link", "add", port, "numtxqueues", q, "numrxqueues", q, "type", "veth",
		"peer", "name", "eth0", "netns", ns, "numtxqueues", q, "numrxqueues", q)
	e.links = append(e.links, port)
	e.Run("ip", "link", "set", port, "up")
	e.Run("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
	e.Run("ip", "-n", ns, "link", "set", "eth0", "up")
	return port
}

// Exec runs argv inside ns and returns its combined output.
func (e *Env) Exec(ns string, argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	return string(out), err
}

func (e *Env) cleanup() {
	for _, l := range e.links {
		exec.Command("ip", "link", "del", l).Run()
	}
	for _, ns := range e.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}
