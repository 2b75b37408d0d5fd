package dataplane

import (
	"path/filepath"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
)

// ClassifyFile replays one capture file through the engine with packet time
// as its clock (shard.Replay); the records are named after the file.
func ClassifyFile(path string, opt shard.Options) (*shard.Result, error) {
	r, err := pcapsrc.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return shard.Replay(r, filepath.Base(path), opt)
}
