package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/swarmguard/swarmguard/dataplane/live"
)

// cmdBanLatency reads live decision records and prints, for each IP, the
// time from the start of its first p2p flow to its ban. It fails when an IP
// with a p2p flow was not banned or took longer than --max, or when none
// of the IPs was banned.
func cmdBanLatency(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench banlatency")
	maxWait := fs.Duration("max", 10*time.Second, "longest acceptable time to ban")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErr("bench banlatency: want RECORDS.jsonl IP[,IP...]")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench banlatency: %w", err)}
	}
	defer f.Close()
	first := map[netip.Addr]time.Time{}
	banned := map[netip.Addr]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var r live.Record
		if json.Unmarshal(sc.Bytes(), &r) != nil || !r.IsFlow() || r.Label != "p2p" {
			continue
		}
		start, _ := time.Parse(time.RFC3339Nano, r.Start)
		at, _ := time.Parse(time.RFC3339Nano, r.Time)
		for _, ep := range []string{r.A, r.B} {
			ap, err := netip.ParseAddrPort(ep)
			if err != nil {
				continue
			}
			if t, ok := first[ap.Addr()]; !ok || start.Before(t) {
				first[ap.Addr()] = start
			}
		}
		if a, err := netip.ParseAddr(r.Ban); err == nil {
			if t, ok := banned[a]; !ok || at.Before(t) {
				banned[a] = at
			}
		}
	}
	bad, bans := 0, 0
	for _, s := range strings.Split(fs.Arg(1), ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return usageErr("bench banlatency: %q is not an IP address", s)
		}
		b, ok := banned[a]
		_, hadFlow := first[a]
		if ok {
			bans++
		}
		switch {
		case !ok && !hadFlow:
			fmt.Fprintf(stdout, "ok   %s had no p2p flow (nothing to ban)\n", a)
		case !ok:
			fmt.Fprintf(stdout, "FAIL %s never banned\n", a)
			bad++
		case b.Sub(first[a]) > *maxWait:
			fmt.Fprintf(stdout, "FAIL %s banned %v after its first p2p flow (max %v)\n", a, b.Sub(first[a]).Round(time.Millisecond), *maxWait)
			bad++
		default:
			fmt.Fprintf(stdout, "ok   %s banned %v after its first p2p flow\n", a, b.Sub(first[a]).Round(time.Millisecond))
		}
	}
	if bad > 0 || bans == 0 {
		return &exitError{code: 1, err: fmt.Errorf("bench banlatency: %d of the peers not banned in time, %d banned", bad, bans)}
	}
	return nil
}
