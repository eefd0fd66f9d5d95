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
		return v, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return v, nil
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
