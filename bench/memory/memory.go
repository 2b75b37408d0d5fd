// Package memory measures swarmguard's resident memory with N concurrent
// flows: one worker whose table holds them, fed one new flow per packet.
package memory

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"unsafe"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Result is what Measure found.
type Result struct {
	Flows        int     `json:"flows"`
	Active       int     `json:"active"`         // flows in the table at the end
	EntryBytes   int     `json:"entry_bytes"`    // one table entry
	TableBytes   int64   `json:"table_bytes"`    // the table's allocation
	BytesPerFlow float64 `json:"bytes_per_flow"` // table bytes / flows
	RSSMiB       float64 `json:"rss_mib"`        // the process, after
	BaseRSSMiB   float64 `json:"base_rss_mib"`   // the process, before the worker
}

func rss() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// Measure builds a worker whose table holds 5 % more than flows and sends
// one UDP packet of each flow through it.
func Measure(flows int) (Result, error) {
	debug.FreeOSMemory()
	base := rss()
	capacity := flows + flows/20
	w := shard.NewWorker(shard.Config{Model: classifier.DefaultModel(), Flows: shard.TableConfig{Capacity: capacity}})
	frame := make([]byte, 14+20+8+32)
	frame[12], frame[13] = 0x08, 0x00
	ip := frame[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 20+8+32)
	binary.BigEndian.PutUint16(ip[24:], 8+32)
	now := int64(1e18)
	for i := 0; i < flows; i++ {
		binary.BigEndian.PutUint32(ip[12:], 10<<24|uint32(i>>16))
		binary.BigEndian.PutUint32(ip[16:], 11<<24|uint32(i&0xffff))
		binary.BigEndian.PutUint16(ip[20:], uint16(1024+i%50000))
		binary.BigEndian.PutUint16(ip[22:], 6881)
		w.Packet(packet.LinkEthernet, frame, now)
		if i%65536 == 0 {
			w.Delta().Reset() // the merger would, every 100 ms
		}
	}
	runtime.GC()
	t := w.Table()
	entry := int(unsafe.Sizeof(shard.Flow{}))
	tableBytes := int64(t.Capacity())*int64(entry) + int64(t.Buckets())*32
	r := Result{Flows: flows, Active: t.Stats.Active, EntryBytes: entry, TableBytes: tableBytes,
		BytesPerFlow: float64(tableBytes) / float64(flows), RSSMiB: rss(), BaseRSSMiB: base}
	runtime.KeepAlive(w)
	if r.Active < flows*99/100 {
		return r, fmt.Errorf("memory: only %d of %d flows stayed in the table", r.Active, flows)
	}
	return r, nil
}
