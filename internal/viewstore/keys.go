package viewstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/partita-dev/partita/views"
)

// Key layout of the LevelDB row store:
//
//	r\x00<id>                       -> row envelope (JSON: row and per-source sequences)
//	i\x00<field>\x00<value><id>     -> "" (secondary index entry; value order-preserving, self-delimiting)
//	o\x00<partition, 4 bytes BE>    -> next offset to read (8 bytes BE) and apply time (8 bytes, unix nanos)
const (
	prefixRow    = "r\x00"
	prefixIndex  = "i\x00"
	prefixOffset = "o\x00"
)

func rowKey(id string) []byte { return []byte(prefixRow + id) }

func indexPrefix(field string) []byte { return []byte(prefixIndex + field + "\x00") }

// Type tags of encoded index values, in sort order.
const (
	tagNull   = 0x01
	tagFalse  = 0x02
	tagTrue   = 0x03
	tagNumber = 0x04
	tagString = 0x05
)

// encodeValue encodes a JSON scalar so that byte order is value order:
// null < false < true < numbers < strings. Strings escape 0x00 as 0x00 0xff
// and end with 0x00 0x01, so an encoded value is self-delimiting and a
// prefix of a string encodes to a prefix of its encoding.
func encodeValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return []byte{tagNull}, nil
	case bool:
		if v {
			return []byte{tagTrue}, nil
		}
		return []byte{tagFalse}, nil
	case float64:
		return encodeNumber(v), nil
	case int:
		return encodeNumber(float64(v)), nil
	case int64:
		return encodeNumber(float64(v)), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return encodeNumber(f), nil
	case string:
		return append(encodeStringPrefix(v), 0x00, 0x01), nil
	default:
		return nil, fmt.Errorf("%w: %T is not a scalar (string, number, bool or null)", views.ErrBadQuery, v)
	}
}

func encodeNumber(f float64) []byte {
	bits := math.Float64bits(f)
	if bits&(1<<63) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	out := make([]byte, 9)
	out[0] = tagNumber
	binary.BigEndian.PutUint64(out[1:], bits)
	return out
}

func encodeStringPrefix(s string) []byte {
	out := make([]byte, 0, len(s)+3)
	out = append(out, tagString)
	out = append(out, strings.ReplaceAll(s, "\x00", "\x00\xff")...)
	return out
}

// upperBound is the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	out := append([]byte(nil), p...)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] < 0xff {
			out[i]++
			return out[:i+1]
		}
	}
	return nil // no bound: p is all 0xff
}
