package codec

import "strings"

// DecodeViaBinding is the sdk binding's reading of a record (header names
// lower-cased, as DecodeEvent does), for checking DecodeEvent against it.
func DecodeViaBinding(r Record) (*Event, error) {
	h := make(map[string][]byte, len(r.Headers))
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	return decodeViaBinding(h, r.Value)
}

// AttributesOf is an event as DecodeAttributes returns it.
func AttributesOf(e Event) Attributes { return attributesOf(e) }
