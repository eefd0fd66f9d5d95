// Command temporal is the Temporal side of the timer and workflow benchmarks
// (bench/temporal_test.go runs it). It is a module of its own so that the
// Temporal SDK stays out of Partita's go.mod.
//
// It starts Temporal's development server itself (the CLI given by
// -temporal: `temporal server start-dev`, headless, on free loopback ports,
// SQLite in a temporary file), waits until the frontend answers, registers a
// worker on a task queue of its own, runs one workload, stops the server and
// prints one JSON line on standard output:
//
//	{"workload":"timers","n":200,"delay_ns":...,"seconds":...,"rate":...,"p50_ns":...,"p99_ns":...,...}
//
// Workloads (-workload):
//
//   - timers: -n workflows started as fast as possible (-starters start
//     requests in flight), each sleeps -delay on a durable timer
//     (workflow.Sleep) and completes. rate is timers fired per second: n over
//     the time from the first start request to the last completion the
//     client observed. p50/p99 are the lateness of the timer, defined at
//     Timer below.
//   - steps3: -n workflows of three sequential trivial activities, started
//     the same way. rate is workflows completed per second (the same
//     window); p50/p99 are end-to-end latencies, from the client sending the
//     start request to the client observing the completion.
//
// Diagnostics go to standard error; the server's own log is kept in the
// temporary directory and shown only when the server fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

const taskQueue = "partita-bench"

// Result is the line printed on standard output. Durations are in
// nanoseconds.
type Result struct {
	Workload string  `json:"workload"`
	N        int     `json:"n"`
	Delay    int64   `json:"delay_ns,omitempty"` // timers: the sleep
	Seconds  float64 `json:"seconds"`            // first start request to last completion
	Rate     float64 `json:"rate"`               // N / Seconds
	P50      int64   `json:"p50_ns"`
	P99      int64   `json:"p99_ns"`
	// timers only: the lateness measured from when the timer was set (the
	// workflow's first task ran) instead of from the workflow's start, so
	// without the wait for the first workflow task.
	SetP50 int64 `json:"set_p50_ns,omitempty"`
	SetP99 int64 `json:"set_p99_ns,omitempty"`
}

func main() {
	var (
		workload = flag.String("workload", "timers", "timers or steps3")
		n        = flag.Int("n", 200, "number of workflows")
		delay    = flag.Duration("delay", time.Second, "timers: how long each workflow sleeps")
		cli      = flag.String("temporal", "temporal", "the temporal CLI, whose `server start-dev` serves the run")
		starters = flag.Int("starters", 16, "start requests in flight at once")
		timeout  = flag.Duration("timeout", 10*time.Minute, "give up (and stop the server) after this long")
	)
	flag.Parse()
	if *workload != "timers" && *workload != "steps3" {
		fail(fmt.Errorf("unknown -workload %q (timers or steps3)", *workload))
	}
	if *n < 1 || *starters < 1 {
		fail(errors.New("-n and -starters must be positive"))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()

	res, err := run(ctx, *cli, *workload, *n, *delay, *starters)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "temporal bench:", err)
	os.Exit(1)
}

// run starts the server and a worker, runs the workload and stops them.
func run(ctx context.Context, cli, workload string, n int, delay time.Duration, starters int) (Result, error) {
	srv, err := startServer(ctx, cli)
	if err != nil {
		return Result{}, err
	}
	defer srv.stop()

	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := srv.dial(ctx, logger)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()

	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(Timer)
	w.RegisterWorkflow(Steps3)
	w.RegisterActivity(Step)
	if err := w.Start(); err != nil {
		return Result{}, fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	switch workload {
	case "timers":
		return timers(ctx, c, n, delay, starters)
	default:
		return steps3(ctx, c, n, starters)
	}
}

// TimerResult is what a Timer workflow returns: wall-clock times read on
// the worker (Resumed, Set) or recorded by the server (Started), all on
// this machine's clock.
type TimerResult struct {
	Started time.Time // the server recorded the workflow's start
	Set     time.Time // the workflow's first task ran and asked for the timer
	Resumed time.Time // the workflow ran again after the timer fired
}

// Timer sleeps d on a durable timer and completes.
//
// Lateness, the p50/p99 of the timers workload, is Resumed - (Started + d):
// how much later than asked the workflow went on after its sleep, where
// "asked" is d after the server recorded the workflow's start (the
// WorkflowExecutionStarted event's time, workflow.GetInfo's
// WorkflowStartTime). Resumed is the wall clock read on the worker right
// after workflow.Sleep returns, through workflow.SideEffect so that a
// replay reads the recorded value instead of the clock (workflow.Now would
// give the workflow task's start time instead, which the server stamps;
// the side effect reads the clock in the code that goes on). It includes
// everything between the start and the resumption beyond d: the wait for
// the first workflow task (the timer is set there), the timer's firing,
// and the workflow task that delivers it. Measured from Set instead (the
// side effect before the sleep), it leaves out the first wait; the JSON
// line carries that too (set_p50_ns, set_p99_ns).
func Timer(ctx workflow.Context, d time.Duration) (TimerResult, error) {
	r := TimerResult{Started: workflow.GetInfo(ctx).WorkflowStartTime}
	if err := wallClock(ctx, &r.Set); err != nil {
		return r, err
	}
	if err := workflow.Sleep(ctx, d); err != nil {
		return r, err
	}
	return r, wallClock(ctx, &r.Resumed)
}

// wallClock reads time.Now once and records it in the workflow's history.
func wallClock(ctx workflow.Context, t *time.Time) error {
	return workflow.SideEffect(ctx, func(workflow.Context) any { return time.Now() }).Get(t)
}

// Steps3 runs three trivial activities one after the other, each on the
// previous one's result, and returns the last.
func Steps3(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for range 3 {
		if err := workflow.ExecuteActivity(ctx, Step, n).Get(ctx, &n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Step is the trivial activity: it adds one.
func Step(_ context.Context, n int) (int, error) { return n + 1, nil }

// timers runs the timers workload.
func timers(ctx context.Context, c client.Client, n int, delay time.Duration, starters int) (Result, error) {
	results := make([]TimerResult, n)
	window, err := startAll(ctx, c, n, starters, "timer", func(i int) (any, []any, any) {
		return Timer, []any{delay}, &results[i]
	})
	if err != nil {
		return Result{}, err
	}
	late := make([]time.Duration, n)
	fromSet := make([]time.Duration, n)
	for i, r := range results {
		late[i] = r.Resumed.Sub(r.Started.Add(delay))
		fromSet[i] = r.Resumed.Sub(r.Set.Add(delay))
	}
	res := summary("timers", n, window.total, late)
	res.Delay = int64(delay)
	res.SetP50, res.SetP99 = int64(percentile(fromSet, 0.50)), int64(percentile(fromSet, 0.99))
	return res, nil
}

// steps3 runs the steps3 workload.
func steps3(ctx context.Context, c client.Client, n int, starters int) (Result, error) {
	out := make([]int, n)
	window, err := startAll(ctx, c, n, starters, "steps3", func(i int) (any, []any, any) {
		return Steps3, []any{i}, &out[i]
	})
	if err != nil {
		return Result{}, err
	}
	for i, v := range out {
		if v != i+3 {
			return Result{}, fmt.Errorf("workflow %d returned %d, want %d", i, v, i+3)
		}
	}
	return summary("steps3", n, window.total, window.latencies), nil
}

// window is what startAll measured.
type window struct {
	total     time.Duration   // first start request to last completion
	latencies []time.Duration // each workflow's start request to its completion
}

// startAll starts n workflows, at most starters start requests at a time,
// and waits for each one's result (into the pointer spec returns);
// completion is when the client sees the result.
func startAll(ctx context.Context, c client.Client, n, starters int, prefix string, spec func(i int) (wf any, args []any, result any)) (window, error) {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	sent := make([]time.Time, n)
	done := make([]time.Time, n)
	errs := make([]error, n)
	slots := make(chan struct{}, starters)
	var wg sync.WaitGroup
	first := time.Now()
	for i := range n {
		wf, args, result := spec(i)
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i] = time.Now()
			h, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%s-%d", prefix, run, i), TaskQueue: taskQueue}, wf, args...)
			<-slots
			if err != nil {
				errs[i] = fmt.Errorf("start workflow %d: %w", i, err)
				return
			}
			if err := h.Get(ctx, result); err != nil {
				errs[i] = fmt.Errorf("workflow %d: %w", i, err)
				return
			}
			done[i] = time.Now()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return window{}, err
	}
	w := window{latencies: make([]time.Duration, n)}
	last := first
	for i := range n {
		w.latencies[i] = done[i].Sub(sent[i])
		if done[i].After(last) {
			last = done[i]
		}
	}
	w.total = last.Sub(first)
	return w, nil
}

func summary(workload string, n int, total time.Duration, lat []time.Duration) Result {
	return Result{Workload: workload, N: n, Seconds: total.Seconds(), Rate: float64(n) / total.Seconds(),
		P50: int64(percentile(lat, 0.50)), P99: int64(percentile(lat, 0.99))}
}

// percentile is the nearest-rank percentile of d (sorted in place).
func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	i := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

var describeDefault = &workflowservice.DescribeNamespaceRequest{Namespace: "default"}

// server is a running development server.
type server struct {
	cmd      *exec.Cmd
	dir      string // temporary: the SQLite file and the server's log
	hostPort string
	exited   chan struct{}
}

// startServer starts `temporal server start-dev` on free loopback ports
// with a SQLite file in a new temporary directory.
func startServer(ctx context.Context, cli string) (*server, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "partita-temporal-")
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	s := &server{dir: dir, hostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), exited: make(chan struct{})}
	s.cmd = exec.Command(cli, "server", "start-dev", "--headless",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]),
		"--ui-port", strconv.Itoa(ports[1]),
		"--http-port", strconv.Itoa(ports[2]),
		"--metrics-port", strconv.Itoa(ports[3]),
		"--db-filename", filepath.Join(dir, "temporal.db"),
		"--log-level", "warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = sysProcAttr() // its own process group, killed with us where the OS allows
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s server start-dev: %w", cli, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	return s, nil
}

// dial connects to the server, waiting up to a minute for its frontend to
// answer a health check and for the default namespace to exist.
func (s *server) dial(ctx context.Context, logger tlog.Logger) (client.Client, error) {
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("the server exited: %v\n%s", s.cmd.ProcessState, s.log())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		c, err := client.DialContext(ctx, client.Options{HostPort: s.hostPort, Namespace: "default", Logger: logger})
		if err != nil {
			last = err
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.CheckHealth(hctx, &client.CheckHealthRequest{})
		if err == nil {
			_, err = c.WorkflowService().DescribeNamespace(hctx, describeDefault)
		}
		cancel()
		if err == nil {
			return c, nil
		}
		last = err
		c.Close()
	}
	return nil, fmt.Errorf("the server at %s did not answer in a minute: %v\n%s", s.hostPort, last, s.log())
}

// log returns the end of the server's log.
func (s *server) log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// stop ends the server (SIGTERM to its process group, SIGKILL after ten
// seconds) and removes its directory.
func (s *server) stop() {
	signalGroup(s.cmd, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		signalGroup(s.cmd, syscall.SIGKILL)
		<-s.exited
	}
	os.RemoveAll(s.dir)
}

// freePorts returns n distinct free TCP ports on loopback.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
