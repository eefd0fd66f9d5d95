package codec_test

import (
	"errors"
	"testing"

	"github.com/partita-dev/partita/codec"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestProtoCodec(t *testing.T) {
	c := codec.Proto(func() *wrapperspb.StringValue { return &wrapperspb.StringValue{} })
	data, err := c.Encode(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(data)
	if err != nil || v.GetValue() != "hello" {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := c.Decode([]byte{0xff, 0xff, 0xff}); !errors.Is(err, codec.ErrPayload) {
		t.Errorf("garbage: %v", err)
	}
	if !c.Accepts("application/x-protobuf") || c.Accepts("application/json") {
		t.Error("content types")
	}
}

func TestStringAndBytesCodecs(t *testing.T) {
	if _, err := codec.String().Decode([]byte{0xff}); !errors.Is(err, codec.ErrPayload) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if v, err := codec.Bytes().Decode([]byte{1, 2}); err != nil || len(v) != 2 {
		t.Errorf("bytes: %v %v", v, err)
	}
}
