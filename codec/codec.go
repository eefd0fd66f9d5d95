// Package codec holds Partita's payload codecs and the mapping between
// CloudEvents and Kafka records.
//
// Contract:
//   - A [Codec] turns one Go type into bytes and back and names its content
//     type. Decode never panics; a payload that does not fit is an error
//     wrapping [ErrPayload].
//   - [EncodeEvent] writes binary mode (ce_ headers, data as the value, the
//     subject as the key). [DecodeEvent] reads binary and structured mode and
//     validates the required attributes; a record that is not a CloudEvent
//     wraps [ErrNotCloudEvent], an invalid one [ErrInvalidEvent].
//
// No goka or sarama type appears in this package's API.
package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"reflect"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// ErrPayload is wrapped by errors decoding a payload that does not fit its type.
var ErrPayload = errors.New("payload does not fit")

// Codec encodes and decodes values of type T.
type Codec[T any] interface {
	// ContentType is the MIME type written as the event's datacontenttype.
	ContentType() string
	// Accepts reports whether a payload of the given content type can be
	// decoded; an empty content type is always accepted.
	Accepts(contentType string) bool
	Encode(v T) ([]byte, error)
	Decode(data []byte) (T, error)
}

// JSON is a codec for T as JSON (application/json). Decoding rejects an
// empty payload, values of the wrong JSON type and trailing data; it ignores
// unknown fields, so producers can add fields before consumers know them.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) ContentType() string { return "application/json" }

func (jsonCodec[T]) Accepts(ct string) bool {
	mt := mediaType(ct)
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json"
}

func (jsonCodec[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec[T]) Decode(data []byte) (T, error) {
	var v T
	if len(data) == 0 {
		return v, fmt.Errorf("%w: empty JSON payload", ErrPayload)
	}
	// Unmarshal also rejects data after the value.
	if err := json.Unmarshal(data, &v); err != nil {
		return v, payloadError(err)
	}
	return v, nil
}

// PayloadError says where a JSON payload does not fit its type, in the
// payload's own terms (a field path and JSON kinds, never Go type names),
// so it can be shown to the client that sent it. It wraps [ErrPayload].
type PayloadError struct {
	// Field is the path of the offending field ("items.2.quantity"),
	// empty for the payload as a whole.
	Field string
	// Want and Got are JSON kinds ("string", "number", "object", ...),
	// when the mistake is a value of the wrong kind.
	Want, Got string
	// Offset is the byte offset of a syntax error (0 when not one).
	Offset int64
	msg    string
}

func (e *PayloadError) Error() string { return e.msg }

// Unwrap returns ErrPayload.
func (e *PayloadError) Unwrap() error { return ErrPayload }

// payloadError turns encoding/json's error into a PayloadError.
func payloadError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	pe := &PayloadError{}
	switch {
	case errors.As(err, &te):
		got, _, _ := strings.Cut(te.Value, " ") // "number 2.5": the kind, not the value
		pe.Field, pe.Want, pe.Got = te.Field, jsonKind(te.Type), got
		if pe.Field == "" {
			pe.msg = fmt.Sprintf("%v: the payload is a JSON %s, want %s", ErrPayload, pe.Got, article(pe.Want))
		} else {
			pe.msg = fmt.Sprintf("%v: field %q is a JSON %s, want %s", ErrPayload, pe.Field, pe.Got, article(pe.Want))
		}
	case errors.As(err, &se):
		pe.Offset = se.Offset
		pe.msg = fmt.Sprintf("%v: invalid JSON at byte %d", ErrPayload, se.Offset)
	default:
		pe.msg = fmt.Sprintf("%v: invalid JSON", ErrPayload)
	}
	return pe
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "value"
}

func article(kind string) string {
	switch kind {
	case "integer", "object", "array":
		return "an " + kind
	}
	return "a " + kind
}

// String is a codec for UTF-8 text (text/plain).
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) ContentType() string { return "text/plain; charset=utf-8" }
func (stringCodec) Accepts(ct string) bool {
	mt := mediaType(ct)
	return mt == "" || strings.HasPrefix(mt, "text/")
}
func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) Decode(data []byte) (string, error) {
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrPayload)
	}
	return string(data), nil
}

// Bytes is a codec that passes payloads through (application/octet-stream).
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) ContentType() string                { return "application/octet-stream" }
func (bytesCodec) Accepts(string) bool                { return true }
func (bytesCodec) Encode(v []byte) ([]byte, error)    { return v, nil }
func (bytesCodec) Decode(data []byte) ([]byte, error) { return append([]byte(nil), data...), nil }

// Proto is a codec for a protobuf message type (application/protobuf);
// newT returns an empty message to decode into.
func Proto[T proto.Message](newT func() T) Codec[T] { return protoCodec[T]{newT: newT} }

type protoCodec[T proto.Message] struct{ newT func() T }

func (protoCodec[T]) ContentType() string { return "application/protobuf" }
func (protoCodec[T]) Accepts(ct string) bool {
	mt := mediaType(ct)
	return mt == "" || mt == "application/protobuf" || mt == "application/x-protobuf"
}
func (protoCodec[T]) Encode(v T) ([]byte, error) { return proto.Marshal(v) }
func (c protoCodec[T]) Decode(data []byte) (T, error) {
	v := c.newT()
	if err := proto.Unmarshal(data, v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return v, nil
}

func mediaType(ct string) string {
	if ct == "" || ct == "application/json" {
		return ct
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}
