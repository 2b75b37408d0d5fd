// Package train fits swarmguard's weights from labelled captures.
//
// It runs the very engine that classifies (dataplane), in collect mode, over
// the nDPI corpus and the real-client captures, takes a feature row at every
// point a flow is scored, and fits a logistic regression by full-batch Adam
// with L2 regularisation. Everything is deterministic: the same captures give
// the same weights file.
package train

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"sort"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/bench/capture"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard"
)

const nh = classifier.NumFeatures - classifier.FirstHostFeature

// Truth labels a flow: 1 for BitTorrent, 0 for not, ok=false for unlabelled.
type Truth func(pcap, proto string, a, b netip.AddrPort, vlan uint16) (y float64, ok bool)

// Source is a set of capture files with their truth.
type Source struct {
	Name  string
	Files []string
	Truth Truth
	// PayloadOnly keeps positives only from flows with payload: nDPI's
	// BitTorrent labels come from payload, so its payload-less flows are
	// not known to be BitTorrent. The harness's truth comes from its
	// address plan and needs no payload.
	PayloadOnly bool
}

// CorpusTruth labels from a labels.jsonl: bittorrent 1, other 0; unknown and
// name-only BitTorrent labels (DNS/TLS by host name) are left out.
func CorpusTruth(ls *accuracy.Labels) Truth {
	return func(pcap, proto string, a, b netip.AddrPort, vlan uint16) (float64, bool) {
		as, bs := a.String(), b.String()
		if bs < as {
			as, bs = bs, as
		}
		l, ok := ls.ByKey[accuracy.Key{Pcap: pcap, Proto: proto, A: as, B: bs, VLAN: vlan}]
		switch {
		case !ok || l.NameOnly():
			return 0, false
		case l.Label == "bittorrent":
			return 1, true
		case l.Label == "other":
			return 0, true
		}
		return 0, false
	}
}

// CaptureTruth labels the harness's captures from its address plan.
func CaptureTruth(pcap, proto string, a, b netip.AddrPort, vlan uint16) (float64, bool) {
	if capture.Label(a, b) == "bittorrent" {
		return 1, true
	}
	return 0, true
}

// Row is one scoring of one flow.
type Row struct {
	X      [classifier.FirstHostFeature]float32
	Lo, Hi [nh]float32
	Y      float64
	W      float64
	flow   int
}

// HostRow is one host at the end of a capture.
type HostRow struct {
	X [nh + 1]float32 // host features, then log1p(p2p flows)
	Y float64
	W float64
}

// Data is what Collect gathered.
type Data struct {
	Rows                []Row
	Flows, Positive     int
	HostPositive, Hosts int
	btHosts             map[string]map[netip.Addr]bool
}

type flowID struct {
	pcap  string
	key   shard.Key
	first int64
}

// Collect runs every source through the engine and takes a row at each
// scoring. posWeight is the total weight of the BitTorrent flows as a share
// of the others': below 1, a false positive costs more than a miss.
func Collect(sources []Source, model *classifier.Model, posWeight float64) (*Data, error) {
	d := &Data{btHosts: map[string]map[netip.Addr]bool{}}
	ids := map[flowID]int{}
	for _, src := range sources {
		for _, file := range src.Files {
			pcap := filepath.Base(file)
			d.btHosts[pcap] = map[netip.Addr]bool{}
			observe := func(f *shard.Flow, lo, hi *classifier.HostFeatures) {
				a, b := f.Key.Endpoint(0), f.Key.Endpoint(1)
				proto := "udp"
				if f.Key.Proto == 6 {
					proto = "tcp"
				}
				y, ok := src.Truth(pcap, proto, a, b, f.VLAN)
				if !ok || (src.PayloadOnly && y == 1 && f.Payloads() == 0) {
					return
				}
				if y == 1 {
					d.btHosts[pcap][a.Addr()] = true
					d.btHosts[pcap][b.Addr()] = true
				}
				id := flowID{pcap, f.Key, f.First}
				n, seen := ids[id]
				if !seen {
					n = len(ids)
					ids[id] = n
					d.Flows++
					if y == 1 {
						d.Positive++
					}
				}
				var v classifier.Vector
				classifier.FlowFeatures(&f.FlowState, &v)
				r := Row{Y: y, flow: n, Lo: lo.X, Hi: hi.X}
				copy(r.X[:], v[:classifier.FirstHostFeature])
				d.Rows = append(d.Rows, r)
			}
			opt := shard.Options{Worker: shard.Config{Model: model, Observe: observe, Collect: true}}
			res, err := dataplane.ClassifyFile(file, opt)
			if err != nil {
				return nil, fmt.Errorf("collect %s: %w", file, err)
			}
			if res.Err != nil {
				return nil, fmt.Errorf("collect: %w", res.Err)
			}
		}
	}
	// Each flow weighs the same whatever its number of scorings, and the
	// classes weigh posWeight : 1 in total.
	per := map[int]int{}
	for _, r := range d.Rows {
		per[r.flow]++
	}
	var wpos, wneg float64
	for i := range d.Rows {
		r := &d.Rows[i]
		r.W = 1 / float64(per[r.flow])
		if r.Y == 1 {
			wpos += r.W
		} else {
			wneg += r.W
		}
	}
	for i := range d.Rows {
		r := &d.Rows[i]
		if r.Y == 1 {
			r.W *= posWeight * (wpos + wneg) / ((1 + posWeight) * wpos)
		} else {
			r.W *= (wpos + wneg) / ((1 + posWeight) * wneg)
		}
	}
	return d, nil
}

// Params of a fit.
type Params struct {
	PosWeight  float64 // BitTorrent flows' total weight relative to the others'
	Alpha      float64 // flow/host blend (fixed, documented)
	L2         float64 // L2 penalty on weights
	Iterations int
	Rate       float64 // Adam step
}

// DefaultParams are the ones the committed weights were fitted with.
var DefaultParams = Params{PosWeight: 0.1, Alpha: 0.6, L2: 1e-3, Iterations: 4000, Rate: 0.05}

// Fit fits the flow model: S = b + a*sum(w_f x_f) + (1-a)*max over the two
// endpoints of sum(w_h x_h), P = logistic(S), weighted log loss + L2, each
// weight projected onto the sign classifier.Sign gives its feature.
func Fit(rows []Row, p Params) (bias float64, w [classifier.NumFeatures]float64, loss float64) {
	const n = classifier.NumFeatures + 1 // weights then bias
	var theta, m, v, g [n]float64
	for it := 1; it <= p.Iterations; it++ {
		g = [n]float64{}
		loss = 0
		for i := range rows {
			r := &rows[i]
			s, hostLo := score(r, &theta, p.Alpha)
			pr := 1 / (1 + math.Exp(-s))
			loss -= r.W * (r.Y*math.Log(pr+1e-12) + (1-r.Y)*math.Log(1-pr+1e-12))
			e := r.W * (pr - r.Y)
			for j, x := range r.X {
				g[j] += e * p.Alpha * float64(x)
			}
			hx := &r.Hi
			if hostLo {
				hx = &r.Lo
			}
			for j, x := range hx {
				g[classifier.FirstHostFeature+j] += e * (1 - p.Alpha) * float64(x)
			}
			g[n-1] += e
		}
		for j := 0; j < n-1; j++ {
			loss += p.L2 * theta[j] * theta[j]
			g[j] += 2 * p.L2 * theta[j]
		}
		// Adam.
		const b1, b2, eps = 0.9, 0.999, 1e-8
		for j := range theta {
			m[j] = b1*m[j] + (1-b1)*g[j]
			v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
			mh := m[j] / (1 - math.Pow(b1, float64(it)))
			vh := v[j] / (1 - math.Pow(b2, float64(it)))
			theta[j] -= p.Rate * mh / (math.Sqrt(vh) + eps)
		}
		// Projection: each weight keeps the sign its feature has by design.
		for j := 0; j < n-1; j++ {
			if sg := classifier.Sign(j); sg != 0 && float64(sg)*theta[j] < 0 {
				theta[j] = 0
			}
		}
	}
	copy(w[:], theta[:n-1])
	return theta[n-1], w, loss
}

func score(r *Row, theta *[classifier.NumFeatures + 1]float64, alpha float64) (s float64, hostLo bool) {
	for j, x := range r.X {
		s += theta[j] * float64(x)
	}
	var lo, hi float64
	for j := range r.Lo {
		lo += theta[classifier.FirstHostFeature+j] * float64(r.Lo[j])
		hi += theta[classifier.FirstHostFeature+j] * float64(r.Hi[j])
	}
	return theta[classifier.NumFeatures] + alpha*s + (1-alpha)*math.Max(lo, hi), lo >= hi
}

// CollectHosts runs the sources with the fitted flow model and returns one
// row per host: its features and its p2p flows, positive when it took part
// in a BitTorrent flow according to the truth.
func CollectHosts(sources []Source, model *classifier.Model, d *Data) ([]HostRow, error) {
	var rows []HostRow
	for _, src := range sources {
		for _, file := range src.Files {
			pcap := filepath.Base(file)
			opt := shard.Options{Worker: shard.Config{Model: model}, ObserveHost: func(_ string, h hostmerge.Host, v *hostmerge.View) {
				var r HostRow
				copy(r.X[:nh], v.X[:])
				r.X[nh] = float32(math.Log1p(v.P2P))
				if d.btHosts[pcap][h.Addr] {
					r.Y = 1
				}
				rows = append(rows, r)
			}}
			if _, err := dataplane.ClassifyFile(file, opt); err != nil {
				return nil, fmt.Errorf("collect hosts %s: %w", file, err)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Y > rows[j].Y })
	var pos float64
	for _, r := range rows {
		pos += r.Y
	}
	for i := range rows {
		if rows[i].Y == 1 {
			rows[i].W = float64(len(rows)) / (2 * pos)
		} else {
			rows[i].W = float64(len(rows)) / (2 * (float64(len(rows)) - pos))
		}
	}
	d.Hosts, d.HostPositive = len(rows), int(pos)
	return rows, nil
}

// FitHosts fits the host label model: logistic regression on host features and log1p(p2p flows).
func FitHosts(rows []HostRow, p Params) (bias float64, w [nh]float64, p2p float64) {
	const n = nh + 2
	var theta, m, v, g [n]float64
	for it := 1; it <= p.Iterations; it++ {
		g = [n]float64{}
		for _, r := range rows {
			s := theta[n-1]
			for j, x := range r.X {
				s += theta[j] * float64(x)
			}
			e := r.W * (1/(1+math.Exp(-s)) - r.Y)
			for j, x := range r.X {
				g[j] += e * float64(x)
			}
			g[n-1] += e
		}
		for j := 0; j < n-1; j++ {
			g[j] += 2 * p.L2 * theta[j]
		}
		const b1, b2, eps = 0.9, 0.999, 1e-8
		for j := range theta {
			m[j] = b1*m[j] + (1-b1)*g[j]
			v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
			theta[j] -= p.Rate * (m[j] / (1 - math.Pow(b1, float64(it)))) / (math.Sqrt(v[j]/(1-math.Pow(b2, float64(it)))) + eps)
		}
		for j := 0; j < nh; j++ { // host features keep their design sign here too
			if sg := classifier.Sign(classifier.FirstHostFeature + j); sg != 0 && float64(sg)*theta[j] < 0 {
				theta[j] = 0
			}
		}
		if theta[nh] < 0 { // more p2p flows never make a host less p2p
			theta[nh] = 0
		}
	}
	copy(w[:], theta[:nh])
	return theta[n-1], w, theta[nh]
}
