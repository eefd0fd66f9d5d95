package codec_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
)

// BenchmarkDecodeEvent compares DecodeAttributes and DecodeEvent with the
// sdk binding's reading of the same binary-mode command in the same run.
func BenchmarkDecodeEvent(b *testing.B) {
	rec, err := codec.EncodeEvent(sample())
	if err != nil {
		b.Fatal(err)
	}
	var perOp [3]float64
	for i, decode := range []func() error{
		func() error { _, err := codec.DecodeAttributes(rec); return err },
		func() error { _, err := codec.DecodeEvent(rec); return err },
		func() error {
			e, err := codec.DecodeViaBinding(rec)
			if err == nil {
				err = e.Validate()
			}
			return err
		},
	} {
		const n = 200_000
		start := time.Now()
		for range n {
			if err := decode(); err != nil {
				b.Fatal(err)
			}
		}
		perOp[i] = float64(time.Since(start).Nanoseconds()) / n
	}
	fmt.Printf("DecodeAttributes %.0f ns/op (%.2fx of the binding's time), DecodeEvent %.0f ns/op (%.2fx), the sdk binding %.0f ns/op\n",
		perOp[0], perOp[0]/perOp[2], perOp[1], perOp[1]/perOp[2], perOp[2])
	for i := 0; i < b.N; i++ { // the figures above are the result
	}
}
