// Package accuracy scores classify results against labelled flows (the
// corpus's labels.jsonl format: pcap, proto, a, b, label, app, ...).
package accuracy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/swarmguard/swarmguard/shard"
	"io"
	"os"
	"sort"
	"strings"
)

// Label is one labelled flow.
type Label struct {
	Pcap   string `json:"pcap"`
	Proto  string `json:"proto"`
	A      string `json:"a"`
	B      string `json:"b"`
	Label  string `json:"label"`
	App    string `json:"app"`
	VLAN   uint16 `json:"vlan"`
	Tunnel string `json:"tunnel"`
	Pkts   int    `json:"pkts"`
}

// Key identifies a flow across labels and records.
type Key struct {
	Pcap, Proto, A, B string
	VLAN              uint16
}

// Labels are the labelled flows of a set of captures.
type Labels struct {
	ByKey map[Key]Label
	Pcaps map[string]bool
}

// LoadLabels reads one or more labels.jsonl files (comma-separated).
func LoadLabels(paths string) (*Labels, error) {
	all := &Labels{ByKey: map[Key]Label{}, Pcaps: map[string]bool{}}
	for _, path := range strings.Split(paths, ",") {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		ls, err := ReadLabels(path, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		for k, v := range ls.ByKey {
			all.ByKey[k] = v
		}
		for p := range ls.Pcaps {
			all.Pcaps[p] = true
		}
	}
	return all, nil
}

// ReadLabels reads labels from r; name is used in errors.
func ReadLabels(name string, r io.Reader) (*Labels, error) {
	ls := &Labels{ByKey: map[Key]Label{}, Pcaps: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l Label
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return nil, fmt.Errorf("labels: %s:%d: %w", name, n, err)
		}
		ls.ByKey[Key{l.Pcap, l.Proto, l.A, l.B, l.VLAN}] = l
		ls.Pcaps[l.Pcap] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("labels: %s: %w", name, err)
	}
	return ls, nil
}

// NameOnly reports whether a BitTorrent label rests on a host name (a DNS
// query or a TLS SNI for a BitTorrent site), not on BitTorrent traffic.
func (l *Label) NameOnly() bool {
	return l.Label == "bittorrent" && (strings.HasPrefix(l.App, "DNS.") || strings.HasPrefix(l.App, "TLS."))
}

// Row counts one label's flows by what swarmguard said.
type Row struct {
	Label                       string
	Flows, P2P, Unknown, Normal int
	Missing                     int // labelled flows swarmguard has no record of
	// Bytes are the L4 payload bytes of the row's flows, P2PBytes those of
	// its flows labelled p2p: a missed bulk flow weighs what it carried.
	Bytes, P2PBytes uint64
}

// ByteShare is the share of the row's payload bytes in flows labelled p2p
// (0 for a row without bytes).
func (r *Row) ByteShare() float64 {
	if r.Bytes == 0 {
		return 0
	}
	return float64(r.P2PBytes) / float64(r.Bytes)
}

// Miss is a scored flow that went the wrong way.
type Miss struct {
	Label Label
	Got   shard.FlowRecord
}

// Scores is the comparison of a run with the labels.
type Scores struct {
	Rows []Row
	// BTMissed are bittorrent flows with payload not labelled p2p (scored).
	BTMissed []Miss
	// FalseP2P are flows labelled other that came out p2p.
	FalseP2P []Miss
	// NameOnly are DNS/TLS flows named BitTorrent by host name: reported, not scored.
	NameOnly []Miss
}

// Score matches records to labels. The bittorrent row counts only flows
// with payload and not named by host name only; unknown-labelled flows are
// reported in their own row and not scored.
func Score(ls *Labels, results []*shard.Result) *Scores {
	recs := map[Key][]shard.FlowRecord{}
	for _, r := range results {
		for _, f := range r.Flows {
			k := Key{f.Pcap, f.Proto, f.A, f.B, f.VLAN}
			recs[k] = append(recs[k], f)
		}
	}
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Pcap] = true
	}
	rows := map[string]*Row{}
	sc := &Scores{}
	keys := make([]Key, 0, len(ls.ByKey))
	for k := range ls.ByKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		l := ls.ByKey[k]
		if !seen[l.Pcap] {
			continue
		}
		rs := recs[k]
		got, payload := merged(rs)
		if l.NameOnly() {
			sc.NameOnly = append(sc.NameOnly, Miss{l, got})
			continue
		}
		row := rows[l.Label]
		if row == nil {
			row = &Row{Label: l.Label}
			rows[l.Label] = row
		}
		if l.Label == "bittorrent" && !payload && len(rs) > 0 {
			continue // no payload: nothing to recognise
		}
		row.Flows++
		for _, r := range rs {
			row.Bytes += r.Bytes
		}
		if got.Label == "p2p" {
			for _, r := range rs {
				row.P2PBytes += r.Bytes
			}
		}
		switch {
		case len(rs) == 0:
			row.Missing++
		case got.Label == "p2p":
			row.P2P++
		case got.Label == "unknown":
			row.Unknown++
		default:
			row.Normal++
		}
		if l.Label == "bittorrent" && len(rs) > 0 && got.Label != "p2p" {
			sc.BTMissed = append(sc.BTMissed, Miss{l, got})
		}
		if l.Label == "other" && got.Label == "p2p" {
			sc.FalseP2P = append(sc.FalseP2P, Miss{l, got})
		}
	}
	for _, name := range []string{"bittorrent", "other", "unknown"} {
		if r := rows[name]; r != nil {
			sc.Rows = append(sc.Rows, *r)
		}
	}
	return sc
}

// merged folds the records of one key (a flow nDPI saw once may be two of
// ours after an idle timeout): p2p if any is p2p, else unknown if any is.
func merged(rs []shard.FlowRecord) (shard.FlowRecord, bool) {
	var out shard.FlowRecord
	payload := false
	rank := map[string]int{"": 0, "normal": 1, "unknown": 2, "p2p": 3}
	for _, r := range rs {
		if r.PayloadPackets > 0 {
			payload = true
		}
		if rank[r.Label] > rank[out.Label] {
			out = r
		}
	}
	return out, payload
}

// WriteTable prints the per-label table and the flows that went wrong.
func (s *Scores) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%-11s %6s %6s %8s %7s %7s %8s %14s %9s\n", "label", "flows", "p2p", "unknown", "normal", "missing", "p2p_rate", "bytes", "p2p_bytes")
	for _, r := range s.Rows {
		rate := 0.0
		if r.Flows > 0 {
			rate = float64(r.P2P) / float64(r.Flows)
		}
		fmt.Fprintf(w, "%-11s %6d %6d %8d %7d %7d %8.3f %14d %8.4f%%\n", r.Label, r.Flows, r.P2P, r.Unknown, r.Normal, r.Missing, rate, r.Bytes, 100*r.ByteShare())
	}
	fmt.Fprintf(w, "recall (bittorrent with payload -> p2p): %d missed; false positives (other -> p2p): %d; name-only BitTorrent labels (not scored): %d\n",
		len(s.BTMissed), len(s.FalseP2P), len(s.NameOnly))
	for _, m := range s.BTMissed {
		fmt.Fprintf(w, "  missed  %s %s %s %s -> %s p=%.3f\n", m.Label.Pcap, m.Label.Proto, m.Label.A, m.Label.B, m.Got.Label, m.Got.P)
	}
	for _, m := range s.FalseP2P {
		fmt.Fprintf(w, "  false   %s %s %s %s (%s) -> p2p p=%.3f\n", m.Label.Pcap, m.Label.Proto, m.Label.A, m.Label.B, m.Label.App, m.Got.P)
	}
}
