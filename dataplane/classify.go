package dataplane

import (
	"os"
	"path/filepath"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
)

// ClassifyFile replays one capture file through the engine with packet time
// as its clock (shard.Replay); the records are named after the file.
// Path "-" is standard input, named "stdin" in the records.
func ClassifyFile(path string, opt shard.Options) (*shard.Result, error) {
	if path == "-" {
		r, err := pcapsrc.NewReader("stdin", os.Stdin)
		if err != nil {
			return nil, err
		}
		return shard.Replay(r, "stdin", opt)
	}
	r, err := pcapsrc.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return shard.Replay(r, filepath.Base(path), opt)
}
