// Package murmur2 is Kafka's default partitioner hash (the Java client's
// Utils.murmur2), as a hash.Hash32 for goka and sarama.
//
// Contract: Partition(key, n) equals the partition the Java client's default
// partitioner picks for a keyed record, toPositive(murmur2(key)) % n; and
// goka, given New as its hasher, computes the same partition, because Sum32
// returns the hash with its sign bit cleared. Except for keys holding a NUL
// byte: New hashes what precedes the first one, so that the keys of an
// entity's id table ("<subject> NUL <hash>") live on their subject's
// partition (Partita refuses subjects that hold a NUL byte).
package murmur2

import (
	"bytes"
	"hash"
)

const (
	seed = 0x9747b28c
	m    = 0x5bd1e995
	r    = 24
)

// Sum is Kafka's murmur2 of data, as the Java client computes it (an int32).
func Sum(data []byte) int32 {
	length := len(data)
	h := uint32(seed) ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		j := i * 4
		k := uint32(data[j]) | uint32(data[j+1])<<8 | uint32(data[j+2])<<16 | uint32(data[j+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Partition is the partition Kafka's Java default partitioner assigns key
// among n partitions.
func Partition(key []byte, n int32) int32 {
	return (Sum(key) & 0x7fffffff) % n
}

// New returns a hash.Hash32 whose Sum32 is murmur2 of what was written up
// to its first NUL byte, sign bit cleared: pass it to goka's WithHasher, WithViewHasher and
// WithEmitterHasher, and to sarama's NewCustomHashPartitioner.
func New() hash.Hash32 { return &hasher{} }

type hasher struct{ buf []byte }

func (h *hasher) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *hasher) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *hasher) Reset()         { h.buf = h.buf[:0] }
func (h *hasher) Size() int      { return 4 }
func (h *hasher) BlockSize() int { return 4 }
func (h *hasher) Sum32() uint32  { return uint32(Sum(Prefix(h.buf)) & 0x7fffffff) }

// Prefix is what New hashes of key: key up to its first NUL byte.
func Prefix(key []byte) []byte {
	if i := bytes.IndexByte(key, 0); i >= 0 {
		return key[:i]
	}
	return key
}
