package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/internal/netnstest"
)

// bridgeNets is what a `swarmguard run` bridge test runs on: gen-ns --
// port a [the box] port b -- sink-ns, the two hosts 10.99.<subnet>.1 and
// .2, with GRO on and checksums computed by the hosts (veth leaves them to
// offload, which frames forwarded through AF_XDP would keep unfinished).
type bridgeNets struct{ gen, sink, a, b string }

func newBridgeNets(t *testing.T, env *netnstest.Env, tag string, subnet int) bridgeNets {
	t.Helper()
	n := bridgeNets{gen: env.NS("gen" + tag), sink: env.NS("sink" + tag)}
	n.a = env.Veth("a"+tag, n.gen, fmt.Sprintf("10.99.%d.1/24", subnet), 1)
	n.b = env.Veth("b"+tag, n.sink, fmt.Sprintf("10.99.%d.2/24", subnet), 1)
	for _, ns := range []string{n.gen, n.sink} {
		if out, err := env.Exec(ns, "ethtool", "-K", "eth0", "gro", "on", "tx", "off"); err != nil {
			t.Fatalf("ethtool in %s (bench/deps.sh installs it): %v %s", ns, err, out)
		}
	}
	return n
}

// activeBans lists the addresses banned now in the kernel ban map pinned
// at pin.
func activeBans(t *testing.T, pin string) map[string]bool {
	t.Helper()
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

// scrape reads a box's /metrics on 127.0.0.1:port: each sample by its
// series ("name" or "name{labels}"); nil when the box does not answer.
func scrape(port int) map[string]float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// replaySwarm replays a capture out of ns's eth0 at 4x its speed, the
// frames padded to their wire length (swarmguard bench replay), and
// returns when the replay ended.
func replaySwarm(bin, ns, capture string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, bin, "bench", "replay", "--iface", "eth0", "--speed", "4", "--pad", "--timeout", "120s", capture).CombinedOutput()
	if err != nil {
		return fmt.Errorf("replay %s: %v %s", capture, err, out)
	}
	return nil
}
