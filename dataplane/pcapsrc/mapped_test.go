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

// readAll returns the frames (copied) and the final error of a reader.
func readAll(t testing.TB, r *Reader, limit int) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	for range limit {
		f, _, _, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(f))
	}
	return out, nil
}

// sameAsStream writes b to a file, reads it through Open (mapped when it
// is a classic pcap) and as a stream, and wants the same frames, the same
// end and the same error offset.
func sameAsStream(t testing.TB, b []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, serr := newReader("c.pcap", bytes.NewReader(b))
	m, merr := Open(path)
	if (serr == nil) != (merr == nil) {
		t.Fatalf("stream open: %v; file open: %v", serr, merr)
	}
	if serr != nil {
		return
	}
	defer m.Close()
	want, werr := readAll(t, s, 1000)
	// In place, the same frames (another mapping of the same file).
	ip, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if ip.InPlace() {
		var ipErr error
		n := 0
		if err := ip.Guard(func() {
			for ; n < 1000; n++ {
				f, _, _, err := ip.NextInPlace()
				if err != nil {
					ipErr = err
					return
				}
				if n >= len(want) || !bytes.Equal(f, want[n]) {
					t.Fatalf("in place: frame %d differs", n)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if n != len(want) || errors.Is(ipErr, io.EOF) != errors.Is(werr, io.EOF) {
			t.Fatalf("in place: %d frames, then %v; stream: %d, then %v", n, ipErr, len(want), werr)
		}
	}
	got, gerr := readAll(t, m, 1000)
	if len(got) != len(want) {
		t.Fatalf("file: %d frames (%v), stream: %d (%v)", len(got), gerr, len(want), werr)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	var gp, wp *Error
	if errors.Is(werr, io.EOF) != errors.Is(gerr, io.EOF) || errors.As(werr, &wp) != errors.As(gerr, &gp) || wp != nil && gp.Offset != wp.Offset {
		t.Fatalf("file ends with %v, stream with %v", gerr, werr)
	}
}

func TestMappedAsStream(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 74), bytes.Repeat([]byte{3}, 1514)}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, magic := range []uint32{magicMicro, magicNano, magicKuznetzov} {
			extra := 0
			if magic == magicKuznetzov {
				extra = 8
			}
			b := classicFile(order, magic, 2, extra, frames...)
			for cut := 0; cut <= len(b); cut += 7 {
				sameAsStream(t, b[:cut])
			}
		}
	}
	for _, name := range []string{"bittorrent.pcap", "NTPv4.pcap", "lru_ipv6_caches.pcapng"} {
		b, err := os.ReadFile(corpus(name))
		if err != nil {
			t.Fatal(err)
		}
		sameAsStream(t, b)
	}
}

// A classic pcap is read from a mapping, and a frame costs no allocation.
func TestMappedIsMappedAndDoesNotAllocate(t *testing.T) {
	r, err := Open(corpus("bittorrent.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.mp == nil {
		t.Fatal("classic pcap not mapped")
	}
	r.Next()
	if n := testing.AllocsPerRun(100, func() { r.Next() }); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}

// mappedFile writes 20,000 frames of 1,000 bytes made by frame (~20 MB:
// many pages past a cut at 4 MiB) and opens the file, mapped; it is closed
// when the test ends.
func mappedFile(t *testing.T, frame func(i int) []byte) (string, *Reader, [][]byte) {
	t.Helper()
	var frames [][]byte
	for i := range 20000 {
		frames = append(frames, frame(i))
	}
	path := filepath.Join(t.TempDir(), "shrinking.pcap")
	if err := os.WriteFile(path, classicFile(binary.LittleEndian, magicMicro, 4, 0, frames...), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.mp == nil || !r.InPlace() {
		t.Fatal("not mapped")
	}
	return path, r, frames
}

// A file another process truncates while it is mapped and being read is an
// error at the record the reader had reached, not a SIGBUS: the frames
// before it were read whole.
func TestTruncatedUnderTheReader(t *testing.T) {
	frame := bytes.Repeat([]byte{0x45}, 1000)
	path, r, _ := mappedFile(t, func(int) []byte { return frame })
	read := 0
	for ; read < 1000; read++ {
		if _, _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	// Cut the file to a page boundary well before what is left to read:
	// the pages after it are gone from the mapping.
	if err := os.Truncate(path, 4<<20); err != nil {
		t.Fatal(err)
	}
	for {
		f, _, _, err := r.Next()
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, errTruncatedUnder) {
				t.Fatalf("after %d frames: %v, want the truncation named", read, err)
			}
			if pe.Offset < 4<<20-2*int64(len(frame)) || pe.Offset > 4<<20 {
				t.Fatalf("error at offset %d, the file was cut at %d", pe.Offset, 4<<20)
			}
			t.Logf("%d frames read, then: %v", read, err)
			return
		}
		if !bytes.Equal(f, frame) {
			t.Fatalf("frame %d damaged", read)
		}
		read++
	}
}

func FuzzMapped(f *testing.F) {
	frame := bytes.Repeat([]byte{0x45}, 60)
	f.Add(classicFile(binary.BigEndian, magicNano, 2, 0, frame, frame))
	f.Add(classicFile(binary.LittleEndian, magicKuznetzov, 4, 8, frame))
	f.Add(classicFile(binary.LittleEndian, magicMicro, 4, 0, frame, frame, frame)[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		sameAsStream(t, b)
	})
}

// Frames read in place are the frames Next copies, and a file truncated
// under them makes reading one, on any goroutine under Guard, an error
// instead of a SIGBUS: the frames handed out before the cut and still in
// the file read whole.
func TestInPlaceTruncatedUnderTheReader(t *testing.T) {
	path, r, frames := mappedFile(t, func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) })
	var kept [][]byte // frames as handed out, read later
	err := r.Guard(func() {
		for i := range 8000 {
			f, _, _, err := r.NextInPlace()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f, frames[i]) {
				t.Fatalf("frame %d differs from the file's", i)
			}
			kept = append(kept, f)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file to a page boundary well before the reader's position:
	// frames already handed out lie past it.
	if err := os.Truncate(path, 4<<20); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		sum := 0
		errs <- r.Guard(func() {
			for _, f := range kept[:3000] { // within the file still
				sum += int(f[len(f)-1])
			}
			if sum == 0 {
				panic("nothing read")
			}
			for _, f := range kept[3000:] { // past the cut
				sum += int(f[len(f)-1])
			}
		})
	}()
	err = <-errs
	var pe *Error
	if !errors.As(err, &pe) || !errors.Is(err, errTruncatedUnder) || pe.Offset != -1 {
		t.Fatalf("reading frames past the cut: %v, want the truncation named", err)
	}
	err = r.Guard(func() {
		for {
			if _, _, _, err := r.NextInPlace(); err != nil {
				t.Fatalf("NextInPlace returned %v before the fault", err)
			}
		}
	})
	if !errors.Is(err, errTruncatedUnder) {
		t.Fatalf("reading on past the cut: %v", err)
	}
	t.Logf("then: %v", err)
	// Any other panic is not the source's to catch.
	defer func() {
		if p := recover(); p != "other" {
			t.Fatalf("recovered %v, want the other panic to go on", p)
		}
	}()
	r.Guard(func() { panic("other") })
}
