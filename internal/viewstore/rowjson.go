package viewstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Reading the JSON of envelopes and rows (the envelope's row, a row's
// indexed fields, an indexed field's value) was most of what Apply cost
// besides LevelDB: encoding/json validates each document before decoding
// it, decodes through reflection and copies every value. The store reads
// only the top level of an object, so it does so with a scanner of its own
// that validates as it goes and returns values as sub-slices, without
// allocating. The scanner accepts only valid JSON, and reads it as
// encoding/json does; whatever it refuses (invalid JSON, nesting deeper
// than encoding/json allows) goes to encoding/json, so every result is the
// one encoding/json gives.

// maxNesting is encoding/json's limit on nested objects and arrays; the
// scanner refuses deeper documents (they go to encoding/json).
const maxNesting = 10000

// The scanner's functions take the document and a position in it, and
// return the position after what they read, and whether it was valid.

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue skips the value at i, depth objects and arrays deep.
func skipValue(data []byte, i, depth int) (int, bool) {
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '{':
		return scanObject(data, i, depth+1, nil)
	case c == '[':
		return skipArray(data, i, depth+1)
	case c == '"':
		i, _, ok := skipString(data, i)
		return i, ok
	case c == 't':
		return skipLiteral(data, i, "true")
	case c == 'f':
		return skipLiteral(data, i, "false")
	case c == 'n':
		return skipLiteral(data, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(data, i)
	}
	return i, false
}

func skipLiteral(data []byte, i int, lit string) (int, bool) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// skipString skips the string at i; escaped reports that it has escapes.
func skipString(data []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(data); i++ {
		c := data[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		switch {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return i, false, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+6 > len(data) {
					return i, false, false
				}
				for _, h := range data[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false, false
					}
				}
				i += 5
			default:
				return i, false, false
			}
		default: // a control character
			return i, false, false
		}
	}
	return i, false, false
}

// skipNumber skips a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
	}
	ok := true
	if i < len(data) && data[i] == '0' {
		i++
	} else if i, ok = skipDigits(data, i); !ok {
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		if i, ok = skipDigits(data, i+1); !ok {
			return i, false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i, ok = skipDigits(data, i); !ok {
			return i, false
		}
	}
	return i, true
}

// skipDigits skips one or more decimal digits.
func skipDigits(data []byte, i int) (int, bool) {
	start := i
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i, i > start
}

func skipArray(data []byte, i, depth int) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return i + 1, true
	}
	for {
		var ok, more bool
		if i, ok = skipValue(data, i, depth); !ok {
			return i, false
		}
		if i, more, ok = afterElement(data, i, ']'); !ok || !more {
			return i, ok
		}
	}
}

// afterElement reads what follows an element of an array or an object
// closed by end: a comma (more: i is at the next element) or end (i is
// after it).
func afterElement(data []byte, i int, end byte) (next int, more, ok bool) {
	if i = skipSpace(data, i); i >= len(data) {
		return i, false, false
	}
	switch data[i] {
	case ',':
		return skipSpace(data, i+1), true, true
	case end:
		return i + 1, false, true
	}
	return i, false, false
}

// scanObject skips the object at i, depth objects and arrays deep. For
// each member in order, it calls member (if not nil) with the member's
// name, to read the value at at and return where it ends (reading it with
// skipValue if it has no use for it). The calls happen before the object
// is known to be valid: a caller uses what it saw only if scanObject
// reports true.
func scanObject(data []byte, i, depth int, member func(name []byte, at int) (int, bool)) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return i, false
		}
		start := i
		var escaped, ok bool
		if i, escaped, ok = skipString(data, i); !ok {
			return i, false
		}
		name := data[start+1 : i-1]
		if i = skipSpace(data, i); i >= len(data) || data[i] != ':' {
			return i, false
		}
		i = skipSpace(data, i+1)
		if member == nil {
			i, ok = skipValue(data, i, depth)
		} else {
			if escaped || !utf8.Valid(name) { // as encoding/json unquotes it
				var n string
				if json.Unmarshal(data[start:start+len(name)+2], &n) != nil {
					return i, false
				}
				name = []byte(n)
			}
			i, ok = member(name, i)
		}
		if !ok {
			return i, false
		}
		var more bool
		if i, more, ok = afterElement(data, i, '}'); !ok || !more {
			return i, ok
		}
	}
}

// readObject reads data as a JSON object (or null, an object without
// members) with scanObject. It reports false when data is anything else or
// not valid JSON: the caller then asks encoding/json.
func readObject(data []byte, member func(name []byte, at int) (int, bool)) bool {
	i := skipSpace(data, 0)
	if i >= len(data) {
		return false
	}
	ok := false
	switch data[i] {
	case '{':
		i, ok = scanObject(data, i, 1, member)
	case 'n':
		i, ok = skipLiteral(data, i, "null")
	}
	return ok && skipSpace(data, i) == len(data)
}

// readFields reads the value at i, depth deep, setting values[k] to the raw
// value of its top-level field fields[k] if it is an object (the last one
// of a name counts, as in encoding/json).
func readFields(data []byte, i, depth int, fields []string, values [][]byte) (int, bool) {
	if i >= len(data) || data[i] != '{' || len(fields) == 0 {
		return skipValue(data, i, depth)
	}
	return scanObject(data, i, depth+1, func(name []byte, at int) (int, bool) {
		end, ok := skipValue(data, at, depth+1)
		for k, f := range fields {
			if string(name) == f {
				values[k] = data[at:end]
			}
		}
		return end, ok
	})
}

// readEnvelope returns the row of a row envelope (nil for none, or for an
// envelope that is not valid JSON), sharing envelope's memory, and sets
// values[k] to the raw value of the row's field fields[k] (nil: none), as
// fieldValues does: envelope and row are read in one pass.
func readEnvelope(envelope []byte, fields []string, values [][]byte) []byte {
	clear(values)
	if envelope == nil {
		return nil
	}
	var row []byte
	if readObject(envelope, func(name []byte, at int) (int, bool) {
		if !bytes.EqualFold(name, []byte("row")) { // encoding/json matches field names regardless of case
			return skipValue(envelope, at, 1)
		}
		clear(values) // the last row counts
		end, ok := readFields(envelope, at, 1, fields, values)
		row = envelope[at:end]
		return end, ok
	}) {
		return row
	}
	var e struct{ Row json.RawMessage } // the row only: the sequences are not needed here
	if json.Unmarshal(envelope, &e) != nil {
		clear(values)
		return nil
	}
	fieldValues(e.Row, fields, values)
	return e.Row
}

// envelopeRow returns the row of a row envelope, sharing its memory.
func envelopeRow(envelope []byte) []byte { return readEnvelope(envelope, nil, nil) }

// rowOf returns the row of a row envelope in memory of its own.
func rowOf(envelope []byte) json.RawMessage {
	row := envelopeRow(envelope)
	if row == nil {
		return nil
	}
	return append(json.RawMessage(nil), row...)
}

// fieldValues sets values[k] to the raw value of row's top-level field
// fields[k], nil if row has none (or is not a JSON object).
func fieldValues(row []byte, fields []string, values [][]byte) {
	clear(values)
	if row == nil || len(fields) == 0 {
		return
	}
	i := skipSpace(row, 0)
	if end, ok := readFields(row, i, 0, fields, values); ok && skipSpace(row, end) == len(row) {
		return
	}
	clear(values)
	var m map[string]json.RawMessage
	if json.Unmarshal(row, &m) != nil {
		return
	}
	for k, f := range fields {
		values[k] = m[f]
	}
}

// appendFieldValue appends the index encoding of raw, a valid JSON value,
// to dst. It reports false for values that are not indexed: objects,
// arrays and numbers out of float64's range (which encoding/json does not
// decode either).
func appendFieldValue(dst, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return dst, false
	}
	switch raw[0] {
	case '{', '[':
		return dst, false
	case 'n':
		return append(dst, tagNull), true
	case 't':
		return append(dst, tagTrue), true
	case 'f':
		return append(dst, tagFalse), true
	case '"':
		if content := raw[1 : len(raw)-1]; bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
			return appendString(dst, content), true
		}
		var v string // escapes, or invalid UTF-8 that encoding/json replaces
		if json.Unmarshal(raw, &v) != nil {
			return dst, false
		}
		return appendString(dst, v), true
	}
	f, err := strconv.ParseFloat(string(raw), 64) // as encoding/json decodes a number into an interface
	if err != nil {
		return dst, false
	}
	return appendNumber(dst, f), true
}
