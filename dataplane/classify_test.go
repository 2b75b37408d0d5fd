package dataplane

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// udpCapture writes a classic pcap of n Ethernet/IPv4/UDP frames of 1,000
// bytes over 64 flows, 20 us apart (5,000 a tick: segments big enough for
// the lanes' own goroutines).
func udpCapture(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, 24, 24+n*1016)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535)
	binary.LittleEndian.PutUint32(b[20:], 1) // Ethernet
	frame := make([]byte, 1000)
	for i := range n {
		us := 1_700_000_000_000_000 + int64(i)*20
		var rec [16]byte
		binary.LittleEndian.PutUint32(rec[0:], uint32(us/1e6))
		binary.LittleEndian.PutUint32(rec[4:], uint32(us%1e6))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(frame)))
		binary.BigEndian.PutUint16(frame[12:], 0x0800)
		ip := frame[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(len(frame)-14))
		copy(ip[12:], []byte{10, 0, 0, byte(1 + i%64)})
		copy(ip[16:], []byte{10, 1, 0, 1})
		binary.BigEndian.PutUint16(ip[20:], uint16(40000+i%64))
		binary.BigEndian.PutUint16(ip[22:], 5000)
		binary.BigEndian.PutUint16(ip[24:], uint16(len(frame)-34))
		b = append(append(b, rec[:]...), frame...)
	}
	path := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cutter is the real reader of a capture whose file another process
// truncates to cut bytes as the replay reads record at.
type cutter struct {
	*pcapsrc.Reader
	path  string
	n, at int
	cut   int64
	err   error
}

func (c *cutter) NextInPlace() ([]byte, packet.LinkType, time.Time, error) {
	if c.n++; c.n == c.at {
		c.err = os.Truncate(c.path, c.cut)
	}
	return c.Reader.NextInPlace()
}

// TestReplayOfATruncatedFile: a capture read in place and truncated under
// the replay, to before frames already dealt to the lanes, ends it with
// the truncation named, with 1 and 2 workers: no SIGBUS, and the records
// of the flows before it.
func TestReplayOfATruncatedFile(t *testing.T) {
	for _, workers := range []int{1, 2} {
		path := udpCapture(t, 20000)
		r, err := pcapsrc.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if !r.InPlace() {
			t.Fatal("not read in place")
		}
		src := &cutter{Reader: r, path: path, at: 12000, cut: 8 << 20}
		res, err := shard.Replay(src, "c.pcap", shard.Options{Workers: workers, Worker: shard.Config{Model: classifier.DefaultModel()}, NoReasons: true})
		r.Close()
		if err != nil || src.err != nil {
			t.Fatal(err, src.err)
		}
		if res.Err == nil || !strings.Contains(res.Err.Error(), "file truncated while being read") {
			t.Fatalf("%d workers: replay ended with %v, want the truncation named", workers, res.Err)
		}
		if res.Packets < 8000 || res.Packets > 12000 || len(res.Flows) == 0 {
			t.Fatalf("%d workers: %d packets, %d flows before the error", workers, res.Packets, len(res.Flows))
		}
		t.Logf("%d workers: %d packets, %d flows, then %v", workers, res.Packets, len(res.Flows), res.Err)
	}
}
