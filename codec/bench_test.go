package codec_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
)

// BenchmarkDecodeEvent compares DecodeEvent with the sdk binding's reading
// of the same binary-mode command in the same run.
func BenchmarkDecodeEvent(b *testing.B) {
	rec, err := codec.EncodeEvent(sample())
	if err != nil {
		b.Fatal(err)
	}
	var perOp [2]float64
	for i, decode := range []func() error{
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
	fmt.Printf("DecodeEvent %.0f ns/op, the sdk binding %.0f ns/op: %.2fx of its time\n", perOp[0], perOp[1], perOp[0]/perOp[1])
	for i := 0; i < b.N; i++ { // the figures above are the result
	}
}
