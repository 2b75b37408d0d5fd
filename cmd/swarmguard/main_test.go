package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func code(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestBadInputGivesOneLineAndStatus2(t *testing.T) {
	dir := t.TempDir()
	notPcap := filepath.Join(dir, "x.pcap")
	os.WriteFile(notPcap, []byte("hello, not a capture at all"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"classify"}, "no capture files"},
		{[]string{"classify", "--workers", "0", notPcap}, "--workers"},
		{[]string{"classify", "--bogus"}, "not defined"},
		{[]string{"classify", filepath.Join(dir, "missing.pcap")}, "no such file"},
		{[]string{"classify", notPcap}, "not a pcap or pcapng file"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"bench", "compare", "--repeat", "1,x"}, "--repeat"},
		{[]string{"bench", "compare", "--repeat", "0"}, "--repeat"},
		// Before any system access (these used to be accepted, or to fail
		// on the pinned map): ranges and actions.
		{[]string{"run", "--bridge", "a,b", "--ban-for", "-1h"}, "--ban-for"},
		{[]string{"run", "--bridge", "a,b", "--fail-open", "0"}, "--fail-open"},
		{[]string{"run", "--bridge", "a,b", "--queues", "-1"}, "--queues"},
		{[]string{"run", "--bridge", "a,b", "--ring", "1000"}, "--ring"},
		{[]string{"bans", "add", "10.0.0.1", "--for", "-1h"}, "--for"},
		{[]string{"bans", "add", "notanip"}, "not an IP address"},
		{[]string{"bans", "frob"}, "unknown action"},
		{[]string{"bans", "list", "extra"}, "no argument"},
	} {
		var out, errb bytes.Buffer
		err := run(c.args, &out, &errb)
		if code(err) != 2 || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: status %d, error %q", c.args, code(err), err)
		}
	}
}

// A capture cut short: the records of what was read come out, then the
// error names the file and the byte offset, status 2.
func TestTruncatedCaptureKeepsRecords(t *testing.T) {
	full, err := os.ReadFile("../../testdata/ndpi/pcap/bittorrent.pcap")
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	os.WriteFile(cut, full[:20000], 0o644)
	var out, errb bytes.Buffer
	err = run([]string{"classify", cut}, &out, &errb)
	if code(err) != 2 || !strings.Contains(err.Error(), "cut.pcap: offset ") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("status %d, error %v", code(err), err)
	}
	flows := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		if rec["type"] == "flow" {
			flows++
		}
	}
	if flows == 0 {
		t.Fatal("no flow records before the error")
	}
}

// --cpuprofile writes a profile pprof can read (make pgo merges it into
// default.pgo); a path that cannot be created is a one-line error, status 2.
func TestClassifyCPUProfile(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.pprof")
	var out, errb bytes.Buffer
	if err := run([]string{"classify", "--quiet", "--cpuprofile", prof, "../../testdata/ndpi/pcap/bittorrent.pcap"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	// A pprof profile is a gzipped protobuf: it must inflate to something.
	p, err := os.Open(prof)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	z, err := gzip.NewReader(p)
	if err != nil {
		t.Fatalf("profile is not gzip: %v", err)
	}
	if n, err := io.Copy(io.Discard, z); err != nil || n == 0 {
		t.Fatalf("profile inflates to %d bytes: %v", n, err)
	}
	err = run([]string{"classify", "--cpuprofile", filepath.Join(dir, "no", "such", "dir", "x"), "../../testdata/ndpi/pcap/bittorrent.pcap"}, &out, &errb)
	if code(err) != 2 || !strings.Contains(err.Error(), "cpuprofile") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("status %d, error %v", code(err), err)
	}
}

// version and bench -h answer, status 0 (bench -h was "unknown subcommand").
func TestVersionAndBenchHelp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"bench", "-h"}} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err != nil || out.Len() == 0 {
			t.Errorf("%v: %v, output %q", args, err, out.String())
		}
	}
	var out, errb bytes.Buffer
	run([]string{"version"}, &out, &errb)
	if !strings.HasPrefix(out.String(), "swarmguard ") {
		t.Errorf("version: %q", out.String())
	}
}
