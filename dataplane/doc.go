// Package dataplane runs swarmguard's one packet path: decode, flow shard,
// recognizers, host delta, score, verdict. A Worker owns one flow shard and
// one host delta; the offline runner (Run) and the live AF_XDP source feed
// workers the same way, so every pcap is a regression test of the live path.
package dataplane
