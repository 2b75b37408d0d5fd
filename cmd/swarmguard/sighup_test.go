package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

// SIGHUP used to kill `swarmguard run` (no "stopped" line; the pinned
// program stayed attached and the bridge failed open). It is caught: the
// dataplane keeps running, and SIGTERM still stops it cleanly.
func TestRunSurvivesSIGHUP(t *testing.T) {
	env := netnstest.New(t)
	a := env.Veth("a", env.NS("gen"), "10.99.6.1/24", 1)
	b := env.Veth("b", env.NS("sink"), "10.99.6.2/24", 1)
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sghup%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	var errb testbin.Buffer
	cmd := exec.Command(bin, "run", "--bridge", a+","+b, "--pin", pin, "--records", os.DevNull)
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	if !waitFor(&errb, "running", 20*time.Second) {
		t.Skipf("run did not start (no XDP here?): %s", errb.String())
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(&errb, "SIGHUP", 10*time.Second) {
		t.Fatalf("no word of the SIGHUP: %s", errb.String())
	}
	select {
	case err := <-done:
		t.Fatalf("run ended on SIGHUP (%v): %s", err, errb.String())
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil || !strings.Contains(errb.String(), "stopped") {
			t.Fatalf("SIGTERM after SIGHUP: %v: %s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not stop on SIGTERM: %s", errb.String())
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
	var errb testbin.Buffer
	cmd := exec.Command(bin, "run", "--bridge", a+","+b, "--pin", pin, "--records", log, "--fail-open", "200ms", "--metrics", "", "--status-socket", "")
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	if !waitFor(&errb, "running", 20*time.Second) {
		t.Skipf("run did not start (no XDP here?): %s", errb.String())
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(500 * time.Millisecond) // past fail_open
	capFile, _ := filepath.Abs("../../testdata/ndpi/pcap/443-curl.pcap")
	out, err := env.Exec(gen, bin, "bench", "replay", "--iface", "eth0", "--rate", "2000", capFile)
	cmd.Process.Signal(syscall.SIGCONT)
	if err != nil {
		t.Fatalf("replay through the failed-open bridge: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no stop: %s", errb.String())
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
		t.Fatalf("no failopen event in the log:\n%s\nping: %s", b2, out)
	}
}
