package rotate

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Lines written in chunks that split them anywhere, while the file rotates
// by size and is moved away and reopened (logrotate's way) from another
// goroutine: every line is in exactly one file, whole.
func TestRotateAndReopenKeepEveryLineOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eve.json")
	f, err := Open(path, 4096, 1000)
	if err != nil {
		t.Fatal(err)
	}
	const lines = 20000
	var all strings.Builder
	for i := range lines {
		fmt.Fprintf(&all, `{"event_type":"flow","n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", i%97))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	moved := 0
	wg.Add(1)
	go func() { // logrotate: move the file away, then ask for a reopen
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.Rename(path, filepath.Join(dir, fmt.Sprintf("moved.%d", i))); err == nil {
				moved++
				f.Reopen()
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	b := []byte(all.String())
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(3000))
		if _, err := f.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	close(stop)
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rot, reo := f.Counts()
	if rot == 0 || reo == 0 {
		t.Fatalf("rotations %d, reopens %d: the test did not exercise both", rot, reo)
	}
	seen := make([]int, lines)
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), `{"event_type":"flow","n":%d,`, &n); err != nil || !strings.HasSuffix(sc.Text(), `"}`) {
				t.Fatalf("%s: broken line %q", name, sc.Text())
			}
			seen[n]++
		}
		st, _ := fh.Stat()
		if st.Size() > 0 {
			last := make([]byte, 1)
			fh.ReadAt(last, st.Size()-1)
			if last[0] != '\n' {
				t.Fatalf("%s ends inside a line", name)
			}
		}
		fh.Close()
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("line %d found %d times (%d files, %d moved, %d rotations)", i, c, len(files), moved, rot)
		}
	}
	t.Logf("%d lines in %d files: %d rotations, %d reopens", lines, len(files), rot, reo)
}

// Rotation keeps the newest N files and drops the oldest.
func TestRotateKeepsN(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eve.json")
	f, err := Open(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		fmt.Fprintf(f, "%040d\n", i)
	}
	f.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 3 {
		t.Fatalf("files %v, want eve.json, .1, .2", files)
	}
	b, _ := os.ReadFile(path + ".2")
	if !strings.HasPrefix(string(b), fmt.Sprintf("%040d", 44)) {
		t.Fatalf("eve.json.2 starts %q", b[:min(len(b), 41)])
	}
}
