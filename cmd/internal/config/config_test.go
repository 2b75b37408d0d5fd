package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "swarmguard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The documented defaults, written out and read back, are the defaults:
// every key of the table is in the file, and nothing else.
func TestDefaultFileRoundTrips(t *testing.T) {
	c := Default()
	c.Bridge = []string{"eth0", "eth1"}
	var b bytes.Buffer
	if err := WriteYAML(&b, c); err != nil {
		t.Fatal(err)
	}
	got, errs := Load(write(t, b.String()), nil)
	if len(errs) > 0 {
		t.Fatalf("default file: %v", errs)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, c)
	}
	for _, o := range c.Options() {
		_, key, _ := strings.Cut(o.Key, ".")
		if !strings.Contains(b.String(), "\n  "+key+": ") || !strings.Contains(b.String(), "--"+o.Flag) {
			t.Errorf("%s (--%s) missing from the default file", o.Key, o.Flag)
		}
	}
}

// Every problem of a file comes back, one per key, with its line; the
// measured bugs of issue 11 (a negative ban, fail-open 0, queues -1) are
// among them.
func TestEveryProblemByKey(t *testing.T) {
	p := write(t, `interfaces:
  bridge: [eth0]
  monitr: eth3
  queues: -1
policy:
  ban_for: -1h
  allow_networks: [10.0.0.1/8, bogus]
  allow_ports: 0
kernel:
  fail_open: 0
sockets: 5
log:
  max_size: 12 parsecs
classifier:
  p2p_threshold: 0.3
  normal_threshold: [1]
webhooks:
  urls: [ftp://x]
`)
	_, errs := Load(p, nil)
	want := []string{
		"interfaces.monitr (line 3): unknown key (did you mean interfaces.monitor?)",
		"interfaces.queues (line 4): -1: want 0 to 256",
		"policy.ban_for (line 6): -1h: want 1s to 8760h",
		"policy.allow_networks (line 7): 10.0.0.1/8 has host bits set",
		"policy.allow_ports (line 8): \"0\" is not a port",
		"kernel.fail_open (line 10): 0s: want 10ms to 1h",
		"sockets (line 11): want a mapping",
		"log.max_size (line 13): \"12 parsecs\" is not a size",
		"classifier.p2p_threshold (line 15): 0.3: want 0 (the model's) or 0.5 to 0.999",
		"classifier.normal_threshold (line 16): want a number",
		"webhooks.urls (line 18): \"ftp://x\" is not an http(s) URL",
		"interfaces.bridge: want two different ports",
	}
	if len(errs) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(errs), len(want), errors.Join(errs...))
	}
	for i, w := range want {
		if i >= len(errs) || !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("problem %d: want %q, got\n%v", i, w, errors.Join(errs...))
		}
		if i < len(errs) && strings.Contains(errs[i].Error(), "\n") {
			t.Errorf("problem %d is not one line: %q", i, errs[i])
		}
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	p := write(t, "interfaces: {bridge: [a, b]}\npolicy:\n  ban_for: 2h\n  allow_ports: [80, 443]\n")
	var set [][2]string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	Default().Flags(fs)
	if err := fs.Parse([]string{"--ban-for", "30m", "--allow-port", "22"}); err != nil {
		t.Fatal(err)
	}
	fs.Visit(func(f *flag.Flag) { set = append(set, [2]string{f.Name, f.Value.String()}) })
	c, errs := Load(p, set)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.BanFor != 30*time.Minute || !reflect.DeepEqual(c.AllowPorts, []uint16{22}) || !reflect.DeepEqual(c.Bridge, []string{"a", "b"}) {
		t.Fatalf("ban_for %v, allow_ports %v, bridge %v", c.BanFor, c.AllowPorts, c.Bridge)
	}
	// A bad value on the line is named by its flag.
	_, errs = Load(p, [][2]string{{"ban-for", "-1h"}})
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "--ban-for: ") {
		t.Fatalf("got %v", errs)
	}
}

func TestEmptyAndMissingFiles(t *testing.T) {
	if _, errs := Load(write(t, ""), [][2]string{{"monitor", "eth0"}}); len(errs) > 0 {
		t.Fatalf("empty file: %v", errs)
	}
	if _, errs := Load(write(t, "policy:\n"), [][2]string{{"monitor", "eth0"}}); len(errs) > 0 {
		t.Fatalf("empty section: %v", errs)
	}
	if _, errs := Load(write(t, "policy: [\n"), nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "(file)") {
		t.Fatalf("broken YAML: %v", errs)
	}
	if _, errs := Load(filepath.Join(t.TempDir(), "none.yaml"), nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no such file") {
		t.Fatalf("missing file: %v", errs)
	}
}

// A reload keeps what only a restart changes and names it.
func TestRestartOnlyKeys(t *testing.T) {
	old, _ := Load(write(t, "interfaces: {bridge: [a, b]}\n"), nil)
	n, _ := Load(write(t, "interfaces: {bridge: [a, c], queues: 2}\npolicy: {ban_for: 1h}\n"), nil)
	if got := old.RestartOnly(n); !reflect.DeepEqual(got, []string{"interfaces.bridge", "interfaces.queues"}) {
		t.Fatalf("restart-only changes: %v", got)
	}
	old.KeepRestartOnly(n)
	if n.Bridge[1] != "b" || n.Queues != 0 || n.BanFor != time.Hour {
		t.Fatalf("after keep: bridge %v queues %d ban_for %v", n.Bridge, n.Queues, n.BanFor)
	}
}

// The decoder takes any bytes: problems, never a panic.
func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	c := Default()
	c.Bridge = []string{"a", "b"}
	WriteYAML(&b, c)
	f.Add(b.String())
	f.Add("interfaces: {bridge: [a, b]}\npolicy: {allow_ports: [1, 2], ban_for: 3h}\n")
	f.Add("a: &x {b: *x}\n")
	f.Add("policy:\n  local_networks: !!binary aGVsbG8=\n")
	f.Add("- 1\n- 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		c := Default()
		for _, e := range c.decode([]byte(s)) {
			if e.Error() == "" {
				t.Fatal("empty problem")
			}
		}
		c.Check()
	})
}
