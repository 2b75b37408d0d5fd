package audit

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
)

// Flows written across rotations: every file is a whole pcapng a reader
// takes, every flow is in one file, and the newest N files are kept.
func TestAuditRotatesAtFlowBoundaries(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, 4096, 3, 512)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 300)
	for i := range 40 {
		frame[0] = byte(i)
		fs := []Frame{{Time: time.Unix(int64(i), 0), Len: 1500, Frame: frame}, {Time: time.Unix(int64(i), 1), Len: 300, Frame: frame}, {Time: time.Unix(int64(i), 2), Len: 300, Frame: frame}}
		if err := w.Flow(fmt.Sprintf("flow %d", i), fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	flows, rot := w.Counts()
	files, _ := filepath.Glob(filepath.Join(dir, "audit.pcapng*"))
	if flows != 40 || rot < 3 || len(files) != 4 {
		t.Fatalf("%d flows, %d rotations, files %v", flows, rot, files)
	}
	for _, f := range files {
		r, err := pcapsrc.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, _, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			n++
		}
		r.Close()
		if n == 0 || n%3 != 0 {
			t.Fatalf("%s: %d packets: a flow was split", f, n)
		}
	}
}
