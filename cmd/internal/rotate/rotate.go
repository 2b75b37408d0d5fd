// Package rotate is the decision log's file: JSON lines appended to a file
// that rotates by size (file, file.1, ... file.N) and reopens on request
// (SIGHUP, after logrotate moved it). A file only ever holds whole lines:
// rotation waits for the end of the line being written, so no record is
// split, lost or written twice across files.
package rotate

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// File is a size-rotated, reopenable log file. Its methods may be called
// from several goroutines.
type File struct {
	path               string
	max                int64 // rotate when a write would pass this size; 0: never
	keep               int   // rotated files kept
	mu                 sync.Mutex
	f                  *os.File
	size               int64
	midLine            bool // the last write did not end a line
	reopen             bool
	rotations, reopens uint64
}

// Open opens (appends to) path.
func Open(path string, maxSize int64, keep int) (*File, error) {
	r := &File{path: path, max: maxSize, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *File) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Reopen makes the next write at a line boundary close the file and open
// path again (a new file if logrotate moved the old one away).
func (r *File) Reopen() {
	r.mu.Lock()
	r.reopen = true
	r.mu.Unlock()
}

// Write appends p. Rotation and reopening happen only between lines: the
// part of p up to the end of a line that was started goes to the old file.
func (r *File) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	written := 0
	if r.midLine {
		// Finish the open line in the current file.
		end := bytes.IndexByte(p, '\n') + 1
		if end == 0 {
			end = len(p)
		}
		n, err := r.f.Write(p[:end])
		r.size += int64(n)
		written += n
		if err != nil {
			return written, fmt.Errorf("log: %w", err)
		}
		r.midLine = p[end-1] != '\n'
		p = p[end:]
		if len(p) == 0 {
			return written, nil
		}
	}
	if r.reopen || (r.max > 0 && r.size > 0 && r.size+int64(len(p)) > r.max) {
		if err := r.cycle(); err != nil {
			return written, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	written += n
	if err != nil {
		return written, fmt.Errorf("log: %w", err)
	}
	r.midLine = p[len(p)-1] != '\n'
	return written, nil
}

// cycle closes the file, shifts the rotated ones when rotating (not on a
// reopen), and opens path anew.
func (r *File) cycle() error {
	reopen := r.reopen
	r.reopen = false
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("log: close: %w", err)
	}
	if reopen {
		r.reopens++
	} else {
		r.rotations++
		if err := Shift(r.path, r.keep); err != nil {
			return err
		}
	}
	return r.open()
}

// Shift makes room for a new path: path becomes path.1, path.1 path.2,
// and so on, keep rotated files in all (keep 0 removes path).
func Shift(path string, keep int) error {
	if keep == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate: %w", err)
		}
		return nil
	}
	for i := keep; i >= 1; i-- {
		from := path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", path, i-1)
		}
		if err := os.Rename(from, fmt.Sprintf("%s.%d", path, i)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	return nil
}

// SetLimits changes the rotation size and the files kept (a reload).
func (r *File) SetLimits(maxSize int64, keep int) {
	r.mu.Lock()
	r.max, r.keep = maxSize, keep
	r.mu.Unlock()
}

// Counts returns the rotations and reopens so far.
func (r *File) Counts() (rotations, reopens uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotations, r.reopens
}

// Close closes the file.
func (r *File) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
