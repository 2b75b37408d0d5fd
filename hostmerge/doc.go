// Package hostmerge keeps what swarmguard knows about hosts: per-worker
// deltas that workers fill without locks, a merger that folds them into
// decaying windows every tick (100 ms), and the Snapshot that workers read
// through an atomic pointer: the tick's predictions and turns, and every
// host's newest view, each view immutable and swapped whole in its slot. It also keeps the peers predicted
// from tracker, DHT and PEX answers (seed 002), with a TTL.
//
// Workers report flow events (start, new evidence, decision), never every
// packet, so a decided flow's packets never touch host state.
package hostmerge
