package worker_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/kafkatest"
)

// BenchmarkGatewayRoundTrip measures, on the real broker, the latency of a
// command through the gateway (HTTP -> commands topic -> entity -> replies
// topic -> HTTP) at fixed request rates, open loop, against the latency of
// GET /healthz on the same worker at the same rate (the HTTP floor), and
// prints p50/p99 and their ratios.
func BenchmarkGatewayRoundTrip(b *testing.B) {
	e := kafkatest.Require(b)
	w := startWorker(b, fmt.Sprintf("b%d", time.Now().UnixNano()), e.Plaintext)
	const seconds = 5
	paced(100, 2, func(i int) error { // warm-up: connections, JIT-free but cache-cold paths
		_, _, err := post(w.addr, fmt.Sprintf("/entities/cart/warm-%d/add-item", i), "", shop.AddItem{ProductID: "p", Name: "P", Quantity: 1})
		return err
	})
	for _, rate := range []int{200, 1000} {
		cmd, cmdErr := paced(rate, seconds, func(i int) error {
			code, body, err := post(w.addr, fmt.Sprintf("/entities/cart/bench-%d/add-item", i%500), "", shop.AddItem{ProductID: "p", Name: "P", Quantity: 1})
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("%d %s", code, body)
			}
			return err
		})
		health, _ := paced(rate, seconds, func(int) error {
			code, _ := get(w.addr, "/healthz")
			if code != http.StatusOK {
				return fmt.Errorf("%d", code)
			}
			return nil
		})
		c50, c99 := pct(cmd, 50), pct(cmd, 99)
		h50, h99 := pct(health, 50), pct(health, 99)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		for _, r := range []benchresult.Result{
			{Measure: fmt.Sprintf("GET /healthz at %d/s, p50", rate), Value: ms(h50), Ratio: 1},
			{Measure: fmt.Sprintf("command at %d/s, p50", rate), Value: ms(c50), Ratio: ms(c50) / ms(h50), Baseline: fmt.Sprintf("GET /healthz at %d/s, p50", rate)},
			{Measure: fmt.Sprintf("GET /healthz at %d/s, p99", rate), Value: ms(h99), Ratio: 1},
			{Measure: fmt.Sprintf("command at %d/s, p99", rate), Value: ms(c99), Ratio: ms(c99) / ms(h99), Baseline: fmt.Sprintf("GET /healthz at %d/s, p99", rate)},
			{Measure: fmt.Sprintf("command errors at %d/s", rate), Value: float64(cmdErr), Unit: "errors"},
		} {
			r.Section = "gateway round trip (lower is better)"
			r.Setup = fmt.Sprintf("HTTP -> commands topic -> entity -> replies topic -> HTTP, open loop, %d s per rate, real broker", seconds)
			if r.Unit == "" {
				r.Unit = "ms"
			}
			if r.Ratio == 1 {
				r.Baseline = r.Measure
			}
			benchresult.Print(os.Stdout, r)
		}
	}
	for i := 0; i < b.N; i++ { // the figures above are the result
	}
}

// BenchmarkGatewayJWT measures what validating a JWT costs a command: the
// bank application with authentication off (the baseline) and with JWT on
// (RS256, a JWKS file), a deposit with a bearer token in the second, at
// 1,000 commands/s open loop, same run, real broker; the baseline runs
// before and after.
func BenchmarkGatewayJWT(b *testing.B) {
	bin, err := bankBinary()
	if err != nil {
		b.Fatal(err)
	}
	on := startSecured(b)
	off := startProc(b, bin, fmt.Sprintf("bo%d", time.Now().UnixNano()), on.brokers)
	token := on.valid(b, nil)
	const rate, seconds = 1000, 5
	deposit := func(addr string, headers ...string) func(int) error {
		return func(i int) error {
			req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/entities/account/jwt-%d/deposit", addr, i%500), strings.NewReader(`{"amount":1}`))
			req.Header.Set("Content-Type", "application/json")
			for j := 0; j+1 < len(headers); j += 2 {
				req.Header.Set(headers[j], headers[j+1])
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%d", resp.StatusCode)
			}
			return nil
		}
	}
	paced(100, 2, deposit(off.addr))
	paced(100, 2, deposit(on.addr, "Authorization", "Bearer "+token))
	// The baseline runs before and after (the shared machine drifts).
	offLat, offErr := paced(rate, seconds, deposit(off.addr))
	onLat, onErr := paced(rate, seconds, deposit(on.addr, "Authorization", "Bearer "+token))
	offAfter, offErr2 := paced(rate, seconds, deposit(off.addr))
	offLat, offErr = append(offLat, offAfter...), offErr+offErr2
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, p := range []int{50, 99} {
		base := fmt.Sprintf("authentication off, p%d", p)
		for _, r := range []benchresult.Result{
			{Measure: base, Value: ms(pct(offLat, p)), Ratio: 1, Baseline: base},
			{Measure: fmt.Sprintf("JWT (RS256) validated, p%d", p), Value: ms(pct(onLat, p)), Ratio: ms(pct(onLat, p)) / ms(pct(offLat, p)), Baseline: base},
		} {
			r.Section = "gateway authentication cost (lower is better)"
			r.Setup = fmt.Sprintf("bank deposit through the gateway at %d/s, open loop, %d s each (off before and after on), real broker", rate, seconds)
			r.Unit = "ms"
			benchresult.Print(os.Stdout, r)
		}
	}
	benchresult.Print(os.Stdout, benchresult.Result{Section: "gateway authentication cost (lower is better)",
		Setup:   fmt.Sprintf("bank deposit through the gateway at %d/s, open loop, %d s each (off before and after on), real broker", rate, seconds),
		Measure: "command errors (off / on)", Value: float64(offErr + onErr), Unit: "errors"})
	for i := 0; i < b.N; i++ { // the figures above are the result
	}
}

// paced calls f rate times a second for seconds, each call on its own
// goroutine at its scheduled time, and returns the latencies.
func paced(rate, seconds int, f func(i int) error) ([]time.Duration, int) {
	n := rate * seconds
	lat := make([]time.Duration, n)
	var errs int
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := f(i)
			lat[i] = time.Since(t0)
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, errs
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*p/100].Round(10 * time.Microsecond)
}
