package kafkatest

import (
	"context"
	"net"
	"testing"
	"time"
)

// Require returns the test broker, starting it if none runs. It fails the
// test (never skips it) when the broker cannot be had: integration tests are
// part of `make test` and a missing broker is a failure.
func Require(tb testing.TB) *Env {
	tb.Helper()
	p, err := DefaultPaths()
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := Up(ctx, p, tb.Logf)
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	return env
}

// ClosedAddr returns a loopback address where nothing listens.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
