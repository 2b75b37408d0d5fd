package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
		{[]string{"bench", "capacity", "--gbps", "x"}, "--gbps"},
		{[]string{"bench", "capacity", "--gbps", "-10"}, "--gbps"},
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

// The reference, the man page and the packaged configuration are generated
// from the option table (go generate ./cmd/swarmguard) and kept current.
func TestGeneratedConfigFilesAreCurrent(t *testing.T) {
	for file, args := range map[string][]string{
		"../../docs/CONFIG.md":          {"config", "reference"},
		"../../docs/swarmguard.8":       {"config", "man"},
		"../../contrib/swarmguard.yaml": shippedConfig,
	} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		have, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, out.Bytes()) {
			t.Errorf("%s is stale: go generate ./cmd/swarmguard", file)
		}
	}
	var out, errb bytes.Buffer
	if err := run([]string{"config", "check", "../../contrib/swarmguard.yaml"}, &out, &errb); err != nil {
		t.Fatalf("the packaged configuration does not check: %v\n%s", err, out.String())
	}
}

// config check lists every problem, one line each with its key, status 1;
// run refuses the same file with the first problem and the count, status 2.
func TestConfigCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("interfaces: {bridge: [a, b]}\npolicy:\n  ban_for: -1h\n  allow_nets: [10.0.0.0/8]\n"), 0o644)
	var out, errb bytes.Buffer
	err := run([]string{"config", "check", p}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code(err) != 1 || len(lines) != 2 || !strings.Contains(lines[0], "policy.ban_for (line 3)") || !strings.Contains(lines[1], "policy.allow_nets (line 4): unknown key (did you mean policy.allow_networks?)") {
		t.Fatalf("status %d, output:\n%s", code(err), out.String())
	}
	err = run([]string{"run", "--config", p}, &out, &errb)
	if code(err) != 2 || !strings.Contains(err.Error(), "policy.ban_for (line 3)") || !strings.Contains(err.Error(), "1 more") {
		t.Fatalf("run: status %d, %v", code(err), err)
	}
	err = run([]string{"run", "--config", filepath.Join(t.TempDir(), "none.yaml")}, &out, &errb)
	if code(err) != 2 || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: status %d, %v", code(err), err)
	}
}

// Flags go anywhere on the line, "-" is a capture on stdin, and every
// subcommand answers -h with its synopsis, status 0.
func TestFlagsAnywhereStdinAndHelp(t *testing.T) {
	f, err := os.Open("../../testdata/ndpi/pcap/bittorrent.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	var out, errb bytes.Buffer
	if err := run([]string{"classify", "-", "--workers", "2"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"pcap":"stdin"`) || !strings.Contains(errb.String(), "stdin") {
		t.Fatalf("classify - : %s", errb.String())
	}
	if err := run([]string{"classify", "-", "-"}, &out, &errb); code(err) != 2 {
		t.Fatalf("stdin twice: %v", err)
	}
	for name, syn := range synopsis {
		args := append(strings.Fields(name), "-h")
		out.Reset()
		errb.Reset()
		err := run(args, &out, &errb)
		if code(err) != 0 || !strings.HasPrefix(errb.String(), "usage: swarmguard "+name+" "+syn) {
			t.Errorf("%v: status %d, %q", args, code(err), errb.String())
		}
	}
}

// The Grafana dashboard is valid JSON and asks only for metrics the
// exporter has (names from the metrics package and the service).
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../../contrib/grafana-swarmguard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil || len(d.Panels) < 10 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(d.Panels))
	}
	var src []byte
	for _, f := range []string{"../../dataplane/metrics/metrics.go", "service.go"} {
		s, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, s...)
	}
	name := regexp.MustCompile(`swarmguard_[a-z_]+`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				short := strings.TrimPrefix(m, "swarmguard_")
				if !bytes.Contains(src, []byte(`"`+m+`"`)) && !bytes.Contains(src, []byte(`desc("`+short+`"`)) {
					t.Errorf("panel %q asks for %s, which the exporter does not have", p.Title, m)
				}
			}
		}
	}
}
