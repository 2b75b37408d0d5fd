package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// The decided-flow fast path changes no record: the corpus and the
// real-client captures give the same flow and host records with it and
// without it, and it does take most of their packets.
func TestFastPathSameRecords(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "ndpi", "pcap", "*"))
	caps, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap"))
	files = append(files, caps...)
	if len(files) < 100 {
		t.Fatalf("corpus: %d files", len(files))
	}
	sort.Strings(files)
	var fast, all uint64
	for _, f := range files {
		var res [2]*Result
		for i, slow := range []bool{false, true} {
			opt := Options{Worker: Config{Model: classifier.DefaultModel()}}
			e := NewEngine(EngineConfig{Worker: opt.Worker})
			e.workers[0].slowOnly = slow
			r, err := replay(e, openCapture(t, f), filepath.Base(f), opt)
			if err != nil {
				t.Fatal(err)
			}
			res[i] = r
		}
		if !reflect.DeepEqual(res[0].Flows, res[1].Flows) {
			t.Errorf("%s: flow records differ with the fast path", f)
		}
		if !reflect.DeepEqual(res[0].Hosts, res[1].Hosts) {
			t.Errorf("%s: host records differ with the fast path", f)
		}
	}
	// How much of the corpus the fast path takes once flows are decided.
	for _, f := range files {
		frames := readFrames(t, f)
		w := NewWorker(Config{Model: classifier.DefaultModel()})
		for _, fr := range frames {
			w.Packet(fr.link, fr.data, fr.ts)
		}
		for _, fr := range frames {
			all++
			if fr.link != packet.LinkEthernet {
				continue
			}
			before := w.Stats.Decided
			if _, ok := w.fast(fr.data, fr.ts); ok && w.Stats.Decided == before+1 {
				fast++
			}
		}
	}
	t.Logf("fast path: %d of %d packets on a second pass", fast, all)
	if fast < all/4 {
		t.Errorf("the fast path took %d of %d packets", fast, all)
	}
}

type tframe struct {
	data []byte
	link packet.LinkType
	ts   int64
}

func readFrames(t testing.TB, path string) []tframe {
	r := openCapture(t, path)
	var out []tframe
	for {
		data, link, ts, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tframe{append([]byte(nil), data...), link, ts.UnixNano()})
	}
}

// FuzzFastPath: on any frame the fast path takes, it finds the flow the full
// decoder keys and counts what the full decoder reads (direction, payload
// length, flags); and it takes every frame of the shape it is for.
func FuzzFastPath(f *testing.F) {
	for _, p := range []string{"bittorrent.pcap", "among_us.pcap", "443-curl.pcap"} {
		for i, fr := range readFrames(f, filepath.Join("..", "testdata", "ndpi", "pcap", p)) {
			if fr.link == packet.LinkEthernet && i < 40 {
				f.Add(fr.data)
			}
		}
	}
	for i, fr := range readFrames(f, filepath.Join("..", "testdata", "ndpi", "pcap", "http_ipv6.pcap")) {
		if fr.link == packet.LinkEthernet && i < 8 {
			f.Add(fr.data)
		}
	}
	udp6 := make([]byte, 14+40+8+4)
	binary.BigEndian.PutUint16(udp6[12:], 0x86dd)
	udp6[14], udp6[20] = 0x60, packet.ProtoUDP
	binary.BigEndian.PutUint16(udp6[18:], 8+4)
	copy(udp6[22:], netip.MustParseAddr("2001:db8::2").AsSlice())
	copy(udp6[38:], netip.MustParseAddr("2001:db8::1").AsSlice())
	binary.BigEndian.PutUint16(udp6[58:], 8+4)
	f.Add(udp6)
	udp := make([]byte, 14+20+8+4)
	binary.BigEndian.PutUint16(udp[12:], 0x0800)
	udp[14], udp[23] = 0x45, packet.ProtoUDP
	binary.BigEndian.PutUint16(udp[16:], 20+8+4)
	binary.BigEndian.PutUint16(udp[38:], 8+4)
	f.Add(udp)
	// A VXLAN datagram: the full decoder keys its inner flow.
	for i, fr := range readFrames(f, filepath.Join("..", "testdata", "ndpi", "pcap", "bittorrent.pcap")) {
		if fr.link == packet.LinkEthernet && i < 4 {
			f.Add(vxlanFrame(fr.data))
		}
	}
	model := classifier.DefaultModel()
	f.Fuzz(func(t *testing.T, frame []byte) {
		w := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 64}})
		var m packet.Meta
		res := packet.Decode(packet.LinkEthernet, frame, &m)
		// The replay deals frames to lanes by parseHdr's hash: for every
		// frame it reads that is no tunnel's, the full decoder's key hash.
		var r hdrRec
		if parseHdr(frame, &r) && !r.tunnel && res == packet.OK {
			var k Key
			k.Set(&m)
			if r.hash != k.Hash() {
				t.Fatalf("parseHdr's hash %x, the full decoder's key %+v hashes to %x", r.hash, k, k.Hash())
			}
		}
		w.full(packet.LinkEthernet, frame, 1)
		var fl *Flow
		w.table.Range(func(x *Flow) {
			x.Flags = x.Flags&^classifier.FlagHarvest | classifier.FlagFinal
			x.Label = classifier.Normal
			fl = x
		})
		var before Flow
		if fl != nil {
			before = *fl
		}
		_, ok := w.fast(frame, 2)
		v4 := !m.IPv6 && len(frame) >= 14+20 && binary.BigEndian.Uint16(frame[12:14]) == 0x0800 &&
			frame[14] == 0x45 && binary.BigEndian.Uint16(frame[20:22])&0x3fff == 0
		v6 := m.IPv6 && len(frame) >= 14+40 && binary.BigEndian.Uint16(frame[12:14]) == 0x86dd &&
			(frame[20] == packet.ProtoTCP || frame[20] == packet.ProtoUDP)
		shape := res == packet.OK && m.VLAN == 0 && m.Encap == 0 && (v4 || v6)
		if ok != shape {
			t.Fatalf("fast path took the frame: %v, full decoder's shape: %v (result %d)", ok, shape, res)
		}
		if !ok {
			return
		}
		var k Key
		dir := k.Set(&m)
		if fl == nil || fl.Key != k {
			t.Fatalf("fast path counted a flow, full decoder's key %+v", k)
		}
		want := before
		want.AccountDecided(dir, m.PayloadLen, m.TCPFlags, 2)
		if *fl != want {
			t.Fatalf("fast path counted\n%+v\nfull decoder reads\n%+v", *fl, want)
		}
	})
}

// FuzzBurst: Burst has the effect of Packet on each frame in turn for any
// frames (cut from the input at 0xff 0xfe 0xfd markers, so the fuzzer can
// grow and shrink them), including flows made final between the passes.
func FuzzBurst(f *testing.F) {
	var seed []byte
	for i, fr := range readFrames(f, filepath.Join("..", "testdata", "ndpi", "pcap", "bittorrent.pcap")) {
		if i == 24 {
			break
		}
		seed = append(append(seed, fr.data...), 0xff, 0xfe, 0xfd)
	}
	f.Add(seed)
	// Many small flows through a 16-flow table: inserts, cuckoo moves and
	// evictions between a burst's stages.
	seed = nil
	for i := range 3 * MaxBurst {
		fr := make([]byte, 14+20+8+1)
		binary.BigEndian.PutUint16(fr[12:], 0x0800)
		fr[14], fr[23] = 0x45, packet.ProtoUDP
		binary.BigEndian.PutUint16(fr[16:], 20+8+1)
		copy(fr[26:34], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		binary.BigEndian.PutUint16(fr[34:], uint16(1000+i%40))
		binary.BigEndian.PutUint16(fr[36:], 6881)
		binary.BigEndian.PutUint16(fr[38:], 8+1)
		seed = append(append(seed, fr...), 0xff, 0xfe, 0xfd)
	}
	f.Add(seed)
	model := classifier.DefaultModel()
	f.Fuzz(func(t *testing.T, in []byte) {
		var frames [][]byte
		for len(in) > 0 && len(frames) < 3*MaxBurst {
			i := bytes.Index(in, []byte{0xff, 0xfe, 0xfd})
			if i < 0 {
				i = len(in)
			}
			frames = append(frames, in[:i])
			in = in[min(len(in), i+3):]
		}
		times := make([]int64, len(frames))
		for i := range times {
			times[i] = int64(i) * int64(time.Millisecond)
		}
		one := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 16}})
		many := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 16}})
		out := make([]Verdict, len(frames))
		for pass := 0; pass < 2; pass++ {
			many.Burst(packet.LinkEthernet, frames, times, out)
			for i, fr := range frames {
				if v := one.Packet(packet.LinkEthernet, fr, times[i]); v != out[i] {
					t.Fatalf("pass %d frame %d: Packet %v, Burst %v", pass, i, v, out[i])
				}
			}
			for _, w := range []*Worker{one, many} {
				w.table.Range(func(x *Flow) {
					x.Flags = x.Flags&^classifier.FlagHarvest | classifier.FlagFinal
					if x.Packets()%3 == 0 {
						x.Label, x.More = classifier.P2P, x.More|classifier.MoreConfirmed
					}
				})
			}
			for i := range times {
				times[i] += int64(2 * time.Minute) // past the UDP idle timeout: expiry mid-burst
			}
		}
		if one.Stats != many.Stats {
			t.Fatalf("stats: Packet %+v, Burst %+v", one.Stats, many.Stats)
		}
		var a, b []Flow
		one.table.Range(func(x *Flow) { a = append(a, *x) })
		many.table.Range(func(x *Flow) { b = append(b, *x) })
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("tables differ")
		}
	})
}
