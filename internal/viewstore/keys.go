package viewstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

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

func rowKey(id string) []byte { return appendRowKey(nil, id) }

// appendRowKey appends the row key of id to dst: Apply builds its keys in
// one buffer, since LevelDB copies them.
func appendRowKey(dst []byte, id string) []byte {
	return append(append(dst, prefixRow...), id...)
}

func indexPrefix(field string) []byte { return appendIndexPrefix(nil, field) }

func appendIndexPrefix(dst []byte, field string) []byte {
	return append(append(append(dst, prefixIndex...), field...), 0x00)
}

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
func encodeValue(v any) ([]byte, error) { return appendValue(nil, v) }

func appendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case float64:
		return appendNumber(dst, v), nil
	case int:
		return appendNumber(dst, float64(v)), nil
	case int64:
		return appendNumber(dst, float64(v)), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return appendNumber(dst, f), nil
	case string:
		return appendString(dst, v), nil
	default:
		return nil, fmt.Errorf("%w: %T is not a scalar (string, number, bool or null)", views.ErrBadQuery, v)
	}
}

func appendNumber(dst []byte, f float64) []byte {
	bits := math.Float64bits(f)
	if bits&(1<<63) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(append(dst, tagNumber), bits)
}

// appendString appends the encoding of the string s (a string or the bytes
// of one).
func appendString[S string | []byte](dst []byte, s S) []byte {
	return append(appendStringPrefix(dst, s), 0x00, 0x01)
}

func encodeStringPrefix(s string) []byte { return appendStringPrefix(nil, s) }

func appendStringPrefix[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, tagString)
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0x00 {
			dst = append(append(dst, s[start:i]...), 0x00, 0xff)
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
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
