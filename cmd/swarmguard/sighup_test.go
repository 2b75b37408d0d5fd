package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// waitFor polls the child's stderr for s, at most d.
func waitFor(w *testbin.Buffer, s string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(w.String(), s) {
			return true
		}
	}
	return false
}

// runArgs are the flags every test run of `run` takes: the defaults
// whatever /etc/swarmguard holds, and no metrics port or control socket to
// collide with another test's.
var runArgs = []string{"run", "--config", os.DevNull, "--metrics", "", "--status-socket", ""}

// startRun starts `swarmguard run` with runArgs and args, and waits for it
// to run (it skips the test when XDP cannot attach).
func startRun(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := start(t, bin, append(append([]string{}, runArgs...), args...)...)
	if !waitFor(&c.out, "running", 20*time.Second) {
		t.Skipf("run did not start (no XDP here?): %s", c.out.String())
	}
	return c
}

// SIGHUP used to kill `swarmguard run` (no "stopped" line; the pinned
// program stayed attached and the bridge failed open). It reloads: the
// dataplane keeps running, and SIGTERM still stops it cleanly.
func TestRunSurvivesSIGHUP(t *testing.T) {
	env := netnstest.New(t)
	a := env.Veth("a", env.NS("gen"), "10.99.6.1/24", 1)
	b := env.Veth("b", env.NS("sink"), "10.99.6.2/24", 1)
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sghup%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	c := startRun(t, bin, "--bridge", a+","+b, "--pin", pin, "--records", os.DevNull)
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(&c.out, "SIGHUP: reloaded", 10*time.Second) {
		t.Fatalf("no word of the SIGHUP: %s", c.out.String())
	}
	select {
	case err := <-c.done:
		t.Fatalf("run ended on SIGHUP (%v): %s", err, c.out.String())
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.stop(t); err != nil || !strings.Contains(c.out.String(), "stopped") {
		t.Fatalf("SIGTERM after SIGHUP: %v: %s", err, c.out.String())
	}
}

// A stall longer than fail_open (SIGSTOP) makes the kernel forward by
// itself; once running again, swarmguard logs a failopen event with the
// packets the kernel forwarded meanwhile.
func TestFailOpenIsLogged(t *testing.T) {
	env := netnstest.New(t)
	gen, sink := env.NS("gen"), env.NS("sink")
	a := env.Veth("a", gen, "10.99.9.1/24", 1)
	b := env.Veth("b", sink, "10.99.9.2/24", 1)
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sgfo%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	log := filepath.Join(t.TempDir(), "eve.json")
	c := startRun(t, bin, "--bridge", a+","+b, "--pin", pin, "--records", log, "--fail-open", "200ms")
	c.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(500 * time.Millisecond) // past fail_open
	capFile, _ := filepath.Abs("../../testdata/ndpi/pcap/443-curl.pcap")
	out, err := env.Exec(gen, bin, "bench", "replay", "--iface", "eth0", "--rate", "2000", capFile)
	c.cmd.Process.Signal(syscall.SIGCONT)
	if err != nil {
		t.Fatalf("replay through the failed-open bridge: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.stop(t); err != nil {
		t.Fatalf("stop: %v %s", err, c.out.String())
	}
	b2, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		EventType string `json:"event_type"`
		Packets   uint64 `json:"packets"`
		Reason    string `json:"reason"`
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(b2)), "\n") {
		if json.Unmarshal([]byte(line), &ev) == nil && ev.EventType == "failopen" && ev.Packets > 0 && strings.Contains(ev.Reason, "200ms") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no failopen event in the log:\n%s\nreplay: %s", b2, out)
	}
}
