package pcapsrc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func corpus(name string) string { return filepath.Join("..", "..", "testdata", "ndpi", "pcap", name) }

func count(t *testing.T, r *Reader) (n int, err error) {
	t.Helper()
	for {
		_, _, _, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

func TestReadsEveryCorpusFile(t *testing.T) {
	files, _ := filepath.Glob(corpus("*"))
	if len(files) < 100 {
		t.Fatalf("corpus has %d files", len(files))
	}
	for _, f := range files {
		r, err := Open(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !r.link.Supported() {
			t.Errorf("%s: link type %d unsupported", f, r.link)
		}
		if _, err := count(t, r); err != nil {
			t.Errorf("%v", err)
		}
		r.Close()
	}
}

// Cutting a file anywhere inside a record must end with an *Error naming the
// offset of the last whole record, after every packet before it.
func TestTruncatedFileReportsOffset(t *testing.T) {
	for _, name := range []string{"bittorrent.pcap", "lru_ipv6_caches.pcapng"} {
		full, err := os.ReadFile(corpus(name))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := newReader(name, bytes.NewReader(full))
		total, err := count(t, r)
		if err != nil {
			t.Fatal(err)
		}
		cut := full[:len(full)-7]
		r, _ = newReader(name, bytes.NewReader(cut))
		n, err := count(t, r)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s cut by 7 bytes: err %v", name, err)
		}
		if n != total-1 || pe.Offset <= 0 || pe.Offset >= int64(len(cut)) || pe.File != name {
			t.Fatalf("%s: read %d of %d packets, error %v", name, n, total, pe)
		}
	}
}

func TestNotACapture(t *testing.T) {
	if _, err := newReader("x", bytes.NewReader([]byte("hello world, not a pcap"))); err == nil {
		t.Fatal("text accepted as capture")
	}
	if _, err := newReader("x", bytes.NewReader(nil)); err == nil {
		t.Fatal("empty file accepted")
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	full, _ := os.ReadFile(corpus("bittorrent.pcap"))
	r, _ := newReader("b", bytes.NewReader(full))
	r.Next() // warm the buffer
	if n := testing.AllocsPerRun(100, func() { r.Next() }); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}

func FuzzReader(f *testing.F) {
	for _, name := range []string{"bittorrent.pcap", "lru_ipv6_caches.pcapng", "NTPv4.pcap"} {
		b, _ := os.ReadFile(corpus(name))
		if len(b) > 4096 {
			b = b[:4096]
		}
		f.Add(b)
	}
	frame := bytes.Repeat([]byte{0x45}, 60)
	f.Add(classicFile(binary.BigEndian, magicNano, 2, 0, frame, frame))
	f.Add(classicFile(binary.LittleEndian, magicKuznetzov, 4, 8, frame))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := newReader("fuzz", bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			if _, _, _, err := r.Next(); err != nil {
				var pe *Error
				if !errors.Is(err, io.EOF) && !errors.As(err, &pe) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
		}
	})
}
