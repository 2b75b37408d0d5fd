package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkBanPropagation writes b.N bans from box A, one after the other
// (each acknowledged by JetStream), to the real NATS server (one node, and
// a three-node cluster with the bucket on all three), and reports the
// bans a second A writes, the time from each write to box B's watch
// (p50, p99), and the bucket's stored bytes per ban.
func BenchmarkBanPropagation(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var urls []string
			replicas := 1
			if nodes == 1 {
				urls = []string{natsServer(b, "", "")}
			} else {
				_, urls = natsCluster(b)
				replicas = 3
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			openB := func(box string, u []string) *Bans {
				for try := 0; ; try++ {
					x, err := OpenBans(ctx, Config{URLs: u, Box: box, Replicas: replicas})
					if err == nil {
						if _, err = x.bucket(ctx); err == nil {
							b.Cleanup(x.Close)
							return x
						}
						x.Close()
					}
					if try == 100 {
						b.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			a := openB("box-a", urls[:1])
			bb := openB("box-b", urls[len(urls)-1:])
			var mu sync.Mutex
			got := map[netip.Addr]time.Time{}
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			go bb.Watch(wctx, func(ban Ban) {
				mu.Lock()
				got[ban.Addr] = time.Now()
				mu.Unlock()
			}, func(netip.Addr) {})
			time.Sleep(200 * time.Millisecond)
			sent := make(map[netip.Addr]time.Time, b.N)
			exp := time.Now().Add(time.Hour)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				addr := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
				if i >= 1<<16 {
					addr = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
				}
				sent[addr] = time.Now()
				if err := a.Publish(ctx, Ban{Addr: addr, Expires: exp, Reason: "mse 12 flows"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var lat []time.Duration
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n >= len(sent) {
					break
				}
			}
			mu.Lock()
			for a, t0 := range sent {
				if t1, ok := got[a]; ok {
					lat = append(lat, t1.Sub(t0))
				}
			}
			mu.Unlock()
			if len(lat) < len(sent) {
				b.Fatalf("%d of %d bans reached box B", len(lat), len(sent))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(sent))/b.Elapsed().Seconds(), "bans/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
			st, err := a.js.Stream(ctx, "KV_"+BanBucket)
			if err != nil {
				b.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if info.State.Msgs > 0 {
				b.ReportMetric(float64(info.State.Bytes)/float64(info.State.Msgs), "bytes/ban")
			}
		})
	}
}
