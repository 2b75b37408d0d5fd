package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/cmd/internal/notify"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// child is a process the test started, stopped by PID at cleanup.
type child struct {
	cmd     *exec.Cmd
	out     testbin.Buffer
	done    chan error
	stopped bool
	exit    error
}

func start(t *testing.T, name string, args ...string) *child {
	t.Helper()
	return startCmd(t, exec.Command(name, args...))
}

// startCmd starts cmd with its stdout and stderr in out.
func startCmd(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{cmd: cmd, done: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop sends SIGTERM (and SIGCONT, for a stopped one) and waits (SIGKILL
// after 20 s); it returns the exit.
func (c *child) stop(t *testing.T) error {
	if c.stopped {
		return c.exit
	}
	c.stopped = true
	c.cmd.Process.Signal(syscall.SIGCONT)
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case c.exit = <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		c.exit = fmt.Errorf("%s did not stop on SIGTERM", c.cmd.Path)
	}
	return c.exit
}

// promQuery asks the real Prometheus for one instant value.
func promQuery(t *testing.T, base, q string) (float64, bool) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// waitProm polls Prometheus until q satisfies ok, at most d.
func waitProm(t *testing.T, base, q string, d time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	var last float64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if v, got := promQuery(t, base, q); got {
			last = v
			if ok(v) {
				return v
			}
		}
	}
	t.Fatalf("prometheus: %s stuck at %v", q, last)
	return 0
}

// TestServiceOnALiveBridge runs `swarmguard run --config FILE` as an
// operator would, on a veth bridge carrying a real encrypted swarm, with
// everything of issue 11 switched on: a real Prometheus scraping /metrics,
// the decision log rotating by size and moved away + SIGHUP (logrotate)
// under traffic, a webhook receiver, the control socket (status, reload,
// explained bans), a rejected bad reload and a good one. It checks that
// the values move as the traffic says and that no record is lost or
// written twice across the log files.
func TestServiceOnALiveBridge(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs prometheus (bench/deps.sh installs it)")
	}
	capFile, err := filepath.Abs("../../testdata/captures/hidden-mix.pcap")
	if err != nil {
		t.Fatal(err)
	}
	env := netnstest.New(t)
	gen, sink := env.NS("gen"), env.NS("sink")
	a := env.Veth("a", gen, "10.99.7.1/24", 1)
	b := env.Veth("b", sink, "10.99.7.2/24", 1)
	for _, ns := range []string{gen, sink} {
		if out, err := env.Exec(ns, "ethtool", "-K", "eth0", "gro", "on", "tx", "off"); err != nil {
			t.Fatalf("ethtool: %v %s", err, out)
		}
	}
	bin := testbin.Build(t)
	dir := t.TempDir()
	pin := fmt.Sprintf("/sys/fs/bpf/sgsvc%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	logFile, sock := filepath.Join(dir, "eve.json"), filepath.Join(dir, "run", "swarmguard.sock")
	metricsPort := testbin.FreePort(t)

	var hookMu sync.Mutex
	hooks := map[string]int{}
	var banned []notify.Notice
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notify.Notice
		if json.NewDecoder(r.Body).Decode(&n) == nil {
			hookMu.Lock()
			hooks[n.Event]++
			if n.Event == "ban" {
				banned = append(banned, n)
			}
			hookMu.Unlock()
		}
	}))
	defer hook.Close()

	conf := func(banFor string, extra string) {
		body := fmt.Sprintf(`interfaces:
  bridge: [%s, %s]
kernel:
  pin: %s
policy:
  ban_for: %s
%slog:
  file: %s
  max_size: 4KiB
  keep: 1000
metrics:
  listen: 127.0.0.1:%d
status:
  socket: %s
webhooks:
  urls: [%s]
  timeout: 2s
audit:
  dir: %s
  packets: 8
`, a, b, pin, banFor, extra, logFile, metricsPort, sock, hook.URL, filepath.Join(dir, "audit"))
		if err := os.WriteFile(filepath.Join(dir, "swarmguard.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf("1h", "")
	sg := start(t, bin, "run", "--config", filepath.Join(dir, "swarmguard.yaml"))
	if !waitFor(&sg.out, "running", 30*time.Second) {
		t.Skipf("run did not start (no XDP here?): %s", sg.out.String())
	}

	promDir := filepath.Join(dir, "prometheus")
	os.MkdirAll(promDir, 0o755)
	os.WriteFile(filepath.Join(promDir, "prometheus.yml"), []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: swarmguard
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, metricsPort)), 0o644)
	promPort := testbin.FreePort(t)
	pr := start(t, prom, "--config.file="+filepath.Join(promDir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(promPort), "--log.level=warn")
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	waitProm(t, promURL, `up{job="swarmguard"}`, 60*time.Second, func(v float64) bool { return v == 1 })
	rx0 := waitProm(t, promURL, `swarmguard_kernel_packets_total{action="rx"}`, 10*time.Second, func(float64) bool { return true })

	// The swarm, replayed at twice its speed (~19 s) in the background.
	replayed := make(chan error, 1)
	go func() {
		out, err := env.Exec(gen, bin, "bench", "replay", "--iface", "eth0", "--speed", "2", "--pad", "--timeout", "120s", capFile)
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		replayed <- err
	}()

	// Under traffic, before the swarm's first bans (about 3 s in at this
	// speed), a reload takes effect at once: bans from now on last 2 h.
	var out, errb strings.Builder
	conf("2h", "")
	if err := run([]string{"reload", "--socket", sock}, &out, &errb); err != nil || !strings.Contains(out.String(), "reloaded") {
		t.Fatalf("reload: %v %s", err, out.String())
	}
	reloadedAt := time.Now()

	// Mid-traffic: logrotate moves the log away and sends SIGHUP.
	time.Sleep(4 * time.Second)
	if err := os.Rename(logFile, filepath.Join(dir, "eve.json.moved")); err != nil {
		t.Fatal(err)
	}
	sg.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(&sg.out, "SIGHUP: reloaded", 10*time.Second) {
		t.Fatalf("no reload on SIGHUP: %s", sg.out.String())
	}
	// A bad configuration is rejected with its problem; the running one stays.
	conf("-5m", "")
	out.Reset()
	err = run([]string{"reload", "--socket", sock}, &out, &errb)
	if code(err) != 1 || !strings.Contains(err.Error(), "policy.ban_for") {
		t.Fatalf("bad reload: status %d, %v", code(err), err)
	}

	// status mid-run, as a table (printed for the log) and as JSON.
	out.Reset()
	if err := run([]string{"status", "--socket", sock}, &out, &errb); err != nil {
		t.Fatalf("status: %v", err)
	}
	t.Logf("swarmguard status mid-run:\n%s", out.String())
	for _, w := range []string{"mode", "bridge: " + a, "XDP", "packets/s", "fail-open", "no (heartbeat", "reloads", "2, 1 rejected"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("status table lacks %q", w)
		}
	}
	if err := <-replayed; err != nil {
		t.Fatalf("replay: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // the last decisions and a few scrapes

	out.Reset()
	if err := run([]string{"status", "--json", "--socket", sock}, &out, &errb); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st status
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("status --json: %v: %s", err, out.String())
	}
	if st.Mode != "bridge" || len(st.Ports) != 2 || st.Ports[0].Mode == "none" || st.Decisions["p2p"] == 0 || st.Decisions["normal"] == 0 ||
		st.BansActive == 0 || st.FailOpen || len(st.Recent) == 0 || st.Reloads != 2 || st.ReloadsRejected != 1 {
		t.Fatalf("status: %+v", st)
	}

	// Explained bans: each ban with its flow, reasons, when set and when it ends.
	out.Reset()
	if err := run([]string{"bans", "list", "--socket", sock, "--pin", pin}, &out, &errb); err != nil {
		t.Fatalf("bans list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != st.BansActive+1 || !strings.HasPrefix(lines[0], "ADDRESS") || strings.Contains(out.String(), "earlier run") {
		t.Fatalf("bans list (%d active):\n%s", st.BansActive, out.String())
	}
	first := strings.Fields(lines[1])[0]
	out.Reset()
	if err := run([]string{"bans", "show", first, "--socket", sock, "--pin", pin}, &out, &errb); err != nil || !strings.Contains(out.String(), first) || !strings.Contains(out.String(), " with ") {
		t.Fatalf("bans show %s: %v\n%s", first, err, out.String())
	}

	// Allow-listing a banned address lifts its ban at once (an unban event,
	// a webhook); the other bans stay.
	conf("2h", "  allow_networks: ["+first+"]\n")
	out.Reset()
	if err := run([]string{"reload", "--socket", sock}, &out, &errb); err != nil {
		t.Fatalf("reload with an allow-list: %v", err)
	}
	if !waitFor(&sg.out, "1 bans lifted", 5*time.Second) {
		t.Fatalf("allow-listed ban not lifted: %s", sg.out.String())
	}
	out.Reset()
	run([]string{"bans", "show", first, "--socket", sock, "--pin", pin}, &out, &errb)
	if !strings.Contains(out.String(), "is not banned") {
		t.Fatalf("bans show %s after allow-listing: %s", first, out.String())
	}
	st.BansActive--

	// Prometheus saw the traffic and the decisions.
	waitProm(t, promURL, `swarmguard_kernel_packets_total{action="rx"}`, 15*time.Second, func(v float64) bool { return v > rx0+20000 })
	p2p := waitProm(t, promURL, `swarmguard_decisions_total{label="p2p"}`, 15*time.Second, func(v float64) bool { return v >= float64(st.Decisions["p2p"]) })
	waitProm(t, promURL, `swarmguard_bans_active`, 15*time.Second, func(v float64) bool { return v == float64(st.BansActive) })
	added := waitProm(t, promURL, `swarmguard_bans_added_total`, 15*time.Second, func(v float64) bool { return v >= float64(st.BansActive) })
	waitProm(t, promURL, `swarmguard_reloads_total{result="rejected"}`, 15*time.Second, func(v float64) bool { return v == 1 })
	waitProm(t, promURL, `sum(swarmguard_worker_packets_total)`, 15*time.Second, func(v float64) bool { return v > 50 })
	waitProm(t, promURL, `swarmguard_fail_open`, 15*time.Second, func(v float64) bool { return v == 0 })
	waitProm(t, promURL, `swarmguard_heartbeat_age_seconds`, 15*time.Second, func(v float64) bool { return v < 1 })
	waitProm(t, promURL, `sum(swarmguard_flows_created_total)`, 15*time.Second, func(v float64) bool { return v >= float64(st.Decisions["p2p"]+st.Decisions["normal"]) })
	waitProm(t, promURL, `swarmguard_webhook_notices_total{outcome="sent"}`, 15*time.Second, func(v float64) bool { return v >= added })
	waitProm(t, promURL, `swarmguard_log_rotations_total`, 15*time.Second, func(v float64) bool { return v > 0 })
	t.Logf("prometheus: %v p2p decisions, %v bans added", p2p, added)

	// promtool is happy with the exposition.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(string(exposition))
	if lo, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, lo)
	}
	for _, line := range strings.Split(string(exposition), "\n") {
		if strings.HasPrefix(line, "swarmguard_") && strings.Contains(line, "10.99.") || strings.Contains(line, "10.77.") {
			t.Errorf("an address in a metric: %s", line)
		}
	}

	if err := sg.stop(t); err != nil || !strings.Contains(sg.out.String(), "stopped") {
		t.Fatalf("stop: %v\n%s", err, sg.out.String())
	}
	var decisions int
	if i := strings.LastIndex(sg.out.String(), "stopped:"); i >= 0 {
		fmt.Sscanf(sg.out.String()[i:], "stopped: %d packets in workers, %d forwarded", new(int), new(int))
		if j := strings.Index(sg.out.String()[i:], " decisions"); j > 0 {
			f := strings.Fields(sg.out.String()[i : i+j])
			decisions, _ = strconv.Atoi(f[len(f)-1])
		}
	}

	// Every flow record once, across the moved file, the rotated ones and
	// the current one; bans set after the reload last 2 h.
	files, _ := filepath.Glob(filepath.Join(dir, "eve.json*"))
	seen := map[string]int{}
	flows, bans, later := 0, 0, 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				live.Record
				Host    string `json:"host"`
				Expires string `json:"ban_expires"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: broken line %q: %v", f, sc.Text(), err)
			}
			switch ev.EventType {
			case "flow":
				flows++
				seen[fmt.Sprintf("%x/%v", ev.FlowID, ev.Redecided)]++
			case "ban":
				bans++
				at, _ := time.Parse(time.RFC3339Nano, ev.Time)
				exp, _ := time.Parse(time.RFC3339, ev.Expires)
				if at.After(reloadedAt) {
					later++
					if d := exp.Sub(at); d < 119*time.Minute || d > 121*time.Minute {
						t.Errorf("ban of %s at %s lasts %v after the reload to 2h", ev.Host, ev.Time, d)
					}
				}
			}
		}
		fh.Close()
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("flow record %s written %d times", k, n)
		}
	}
	if later == 0 {
		t.Errorf("no ban after the reload to 2h: the policy change was not exercised")
	}
	if flows != decisions || len(files) < 3 {
		t.Fatalf("%d flow records in %d files, %d decisions", flows, len(files), decisions)
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	if hooks["ban"] != bans || hooks["host"] == 0 || hooks["unban"] != 1 || len(banned) == 0 || banned[0].Expires == "" || len(banned[0].Reasons) == 0 {
		t.Fatalf("webhooks %v for %d ban events: %+v", hooks, bans, banned)
	}
	t.Logf("%d flow records in %d log files, %d bans (%d after the reload), webhooks %v", flows, len(files), bans, later, hooks)

	// The audit capture shows each p2p flow's first packets, the decision
	// as a comment on the first: a ban of the log is there with its reasons.
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("needs tshark (bench/deps.sh installs it)")
	}
	ao, err := exec.Command(tshark, "-r", filepath.Join(dir, "audit", "audit.pcapng"), "-T", "fields", "-e", "frame.comment", "-e", "tcp.flags.syn").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v %s", err, ao)
	}
	comments, pkts, syns := 0, 0, 0
	for _, l := range strings.Split(strings.TrimSpace(string(ao)), "\n") {
		pkts++
		if strings.Contains(l, "swarmguard flow_id=") && strings.Contains(l, "label=p2p") && strings.Contains(l, "reasons: ") {
			comments++
		}
		if strings.HasSuffix(l, "\t1") || strings.HasSuffix(l, "\tTrue") {
			syns++
		}
	}
	if comments < bans || pkts < 2*comments || !strings.Contains(string(ao), "ban="+banned[0].Host) {
		t.Fatalf("audit capture: %d packets, %d flows commented, %d SYNs, %d bans:\n%s", pkts, comments, syns, bans, ao)
	}
	t.Logf("audit capture: %d packets of %d p2p flows (%d SYNs)", pkts, comments, syns)
	_ = pr
}
