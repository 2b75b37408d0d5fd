package capacity

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The arithmetic: 10 Gbps of 64-byte frames is 14.88 Mpps (84 bytes on the
// wire each), and cores are packets a second times the weighted cost.
func TestEstimate(t *testing.T) {
	in := Inputs{BypassNs: 50, WorkerNs: 100, EngineNs: 1000, Share: 0.1, MixShare: 0.5, DriverNs: 80, SocketNs: 100}
	rows := Estimate(in, []float64{10})
	if len(rows) != 2 || rows[0].Size != "64 B" || rows[1].Size != "IMIX" {
		t.Fatalf("rows %+v", rows)
	}
	r := rows[0]
	if math.Abs(r.Mpps-14.880952) > 1e-4 {
		t.Fatalf("10 Gbps at 64 B: %.6f Mpps", r.Mpps)
	}
	fast, slow := 80.0+50, 80.0+100+100+1000
	if want := 0.9*fast + 0.1*slow; math.Abs(r.NsPerPkt-want) > 1e-9 {
		t.Fatalf("ns/packet %.3f, want %.3f", r.NsPerPkt, want)
	}
	if want := r.Mpps * 1e6 * (0.9*fast + 0.1*slow) / 1e9; math.Abs(r.Cores-want) > 1e-9 {
		t.Fatalf("cores %.3f, want %.3f", r.Cores, want)
	}
	if want := r.Mpps * 1e6 * (0.5*fast + 0.5*slow) / 1e9; math.Abs(r.MixCores-want) > 1e-9 {
		t.Fatalf("mix cores %.3f, want %.3f", r.MixCores, want)
	}
	if rows[1].Mpps >= r.Mpps/4 || rows[1].Mpps <= r.Mpps/6 {
		t.Fatalf("IMIX %.2f Mpps against 64 B %.2f", rows[1].Mpps, r.Mpps)
	}
}

// More packets to a decision send more of the mix to the workers; at one
// packet, only the one-packet flows' and every flow's first.
func TestSyntheticShare(t *testing.T) {
	prev := 0.0
	for _, k := range []float64{1, 2, 5, 10, 100, 1e4} {
		s := SyntheticShare(k)
		if s <= prev || s > 1 {
			t.Fatalf("share at %v packets: %.4f after %.4f", k, s, prev)
		}
		prev = s
	}
	if s := SyntheticShare(1e6); s < 0.999 {
		t.Fatalf("every packet before a decision: share %.4f", s)
	}
}

func TestLeastSquares3(t *testing.T) {
	want := [3]float64{1200, 90, 5000}
	var x [][3]float64
	var y []float64
	for _, r := range [][3]float64{{1e4, 5e5, 300}, {9e4, 1e5, 9000}, {1e4, 5e5, 5}, {9e4, 1e5, 10}} {
		x = append(x, r)
		y = append(y, r[0]*want[0]+r[1]*want[1]+r[2]*want[2])
	}
	got, ok := leastSquares3(x, y)
	for i := range got {
		if !ok || math.Abs(got[i]-want[i]) > 1e-6*want[i] {
			t.Fatalf("fit %v, want %v", got, want)
		}
	}
}

// A fresh measurement on this machine gives positive costs, a share of
// packets to workers between none and all, and an estimate that grows with
// the line rate.
func TestMeasure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF_PROG_RUN)")
	}
	long, short, err := BundledCaptures(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	in, err := Measure(Options{Captures: long, Short: short})
	if err != nil {
		if strings.Contains(err.Error(), "too busy") {
			t.Skip(err) // a fit spoiled by a loaded machine is not a wrong model
		}
		t.Fatal(err)
	}
	if in.BypassNs <= 0 || in.WorkerNs <= 0 || in.DevmapNs <= 0 || in.EngineNs <= 0 || in.DecidedNs <= 0 {
		t.Fatalf("costs %+v", in)
	}
	if in.Share <= 0 || in.Share >= 1 || in.MixShare <= in.Share || in.ToDecide < 1 {
		t.Fatalf("shares %+v", in)
	}
	rows := Estimate(in, []float64{10, 40})
	if rows[2].Cores <= rows[0].Cores || rows[0].Bound <= rows[0].MixCores || rows[0].MixCores <= rows[0].Cores {
		t.Fatalf("rows %+v", rows)
	}
	t.Log("\n" + Markdown(in, rows))
}
