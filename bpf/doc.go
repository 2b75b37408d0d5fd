// Package bpf will hold the XDP program (C source, bpf2go bindings and the
// compiled object) that steers packets to AF_XDP sockets, drops banned hosts
// and bypasses decided flows. It arrives with the live dataplane.
package bpf
