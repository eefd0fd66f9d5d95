// Package worker is the entry point of a Partita application: one call,
// [Main], runs a team's entities and views with the worker's configuration,
// embedded broker, HTTP gateway, metrics and dashboard. A worker binary is
// one line; cmd/worker runs the sample application (examples/shop) and is
// the template to copy:
//
//	func main() {
//		os.Exit(worker.Run(worker.App{Name: "orders", Parts: []processor.Part{myEntity(), myView()}}))
//	}
//
// [Run] is [Main] with the process's signals, arguments, environment and
// standard streams; call Main to choose them (tests, a custom shutdown).
//
// Commands:
//
//	run            run the application (default)
//	check          connect to Kafka; print the cluster, brokers, auth and topic permissions
//	config         print the effective configuration, secrets redacted
//	topics plan    print every topic with partitions, replication and config
//	topics create  create the missing topics
//	hash-key       read an API key on stdin; print the hash to put in auth.api_keys
//
// Contract: a bad configuration fails before anything starts, with every
// problem listed (exit code 2); a failed command exits 1. Cancelling ctx
// (SIGTERM) stops intake, lets requests in flight finish, then stops the
// processors, which commit and leave their groups.
package worker

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/partita-dev/partita/internal/envyaml"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"gopkg.in/yaml.v3"
)

// App is what a worker runs: the application's name and its entities and
// views.
type App struct {
	// Name is the application's name, the prefix of its topics ("shop" ->
	// "shop.cart.commands"), unless the configuration's app (PARTITA_APP,
	// --app) says otherwise. One of them must be set.
	Name  string
	Parts []processor.Part
}

// Main runs the worker command given by args and returns its exit code.
// lookup reads the environment (os.LookupEnv); logs go to stderr.
func Main(ctx context.Context, app App, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	return mainWith(ctx, app, args, lookup, os.Stdin, stdout, stderr)
}

// Run is [Main] for a process's main function: it runs the command given by
// the process's arguments (os.Args[1:]) with its environment (os.LookupEnv),
// stdout and stderr, and stops on SIGINT or SIGTERM as when Main's context is
// cancelled. It returns the exit code for os.Exit.
func Run(app App) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, app, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
}

func mainWith(ctx context.Context, app App, args []string, lookup func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "topics" && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = "topics "+args[0], args[1:]
	}
	cfg, rest, err := load(cmd, args, envyaml.Lookup(lookup), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && cfg.App == "" {
		cfg.App = app.Name
		if cfg.App == "" && (cmd == "run" || cmd == "config" || strings.HasPrefix(cmd, "topics ")) {
			err = errors.New("no application name: set worker.App.Name, or app in the configuration (PARTITA_APP, --app)")
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	switch {
	case cmd == "hash-key" && len(rest) == 0:
		err = hashKey(stdin, stdout)
	case len(rest) > 0:
		fmt.Fprintf(stderr, "worker: unexpected arguments %q\n", rest)
		return 2
	case cmd == "run":
		err = serve(ctx, cfg, app, log)
	case cmd == "check":
		err = check(ctx, cfg, log, stdout)
	case cmd == "config":
		err = printConfig(cfg, stdout)
	case cmd == "topics plan":
		err = plan(cfg, app, stdout)
	case cmd == "topics create":
		err = createTopics(ctx, cfg, app, log)
	default:
		fmt.Fprintf(stderr, "worker: unknown command %q (commands: run, check, config, topics plan, topics create, hash-key)\n", cmd)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// hashKey reads an API key from stdin (not from the arguments, which
// other users see in ps) and prints its hash for auth.api_keys.
func hashKey(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	key := strings.TrimSpace(line)
	if key == "" {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("no API key on standard input")
		}
		return err
	}
	_, err = fmt.Fprintln(stdout, HashAPIKey(key))
	return err
}

// kafka returns the connection to use, starting the embedded broker when no
// bootstrap servers are configured. stop releases what it started.
func kafka(cfg Config, log *slog.Logger) (broker.Config, func(), error) {
	if !cfg.Kafka.Embedded() {
		return cfg.Kafka, func() {}, nil
	}
	dir := filepath.Join(cfg.DataDir, "embedded-kafka")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return broker.Config{}, nil, err
	}
	e, err := broker.StartEmbedded(9092, dir)
	if err != nil {
		e, err = broker.StartEmbedded(0, dir) // 9092 taken: any free port
	}
	if err != nil {
		return broker.Config{}, nil, err
	}
	log.Info("no Kafka bootstrap servers configured: started an embedded in-process broker (kfake); for development only",
		"addr", e.Addr, "data_dir", dir)
	return e.Config(cfg.Kafka), e.Close, nil
}

func runtime(cfg Config, kc broker.Config, app App, log *slog.Logger, obs processor.Observer) (*processor.Runtime, error) {
	rc := cfg.Config
	rc.Kafka, rc.Log, rc.Observe = kc, log, obs
	return processor.New(rc, app.Parts...)
}

func check(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	kc, stop, err := kafka(cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := broker.Check(ctx, kc, log)
	if err != nil {
		return err
	}
	r.Write(stdout)
	return nil
}

func printConfig(cfg Config, stdout io.Writer) error {
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	defer enc.Close()
	return enc.Encode(cfg) // broker.Secret marshals as [redacted]
}

func plan(cfg Config, app App, stdout io.Writer) error {
	kc := cfg.Kafka
	if kc.Embedded() {
		kc.BootstrapServers = []string{"embedded:9092"} // planning needs no connection
	}
	rt, err := runtime(cfg, kc, app, nil, nil)
	if err != nil {
		return err
	}
	replication := cfg.Replication
	if replication == 0 {
		replication = 3
		fmt.Fprintln(stdout, "# replication 3 unless the cluster has fewer brokers; set replication to choose")
	}
	specs := rt.Topics(replication)
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	for _, s := range specs {
		fmt.Fprintln(stdout, s)
	}
	return nil
}

func createTopics(ctx context.Context, cfg Config, app App, log *slog.Logger) error {
	kc, stop, err := kafka(cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	rt, err := runtime(cfg, kc, app, log, nil)
	if err != nil {
		return err
	}
	return rt.CreateTopics(ctx)
}

// serve runs the application and its HTTP door until ctx ends. HTTP
// opens first: while Kafka is unreachable /healthz answers (the process is
// alive) and /readyz says what it waits for; the gateway's routes take over
// once the runtime and the gateway have connected.
func serve(ctx context.Context, cfg Config, app App, log *slog.Logger) error {
	kc, stop, err := kafka(cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	auth, err := newAuthenticator(ctx, cfg.Auth, log)
	if err != nil {
		return err
	}
	defer auth.close()
	m := newMetrics()
	var waiting atomic.Value // string: what the worker waits for before serving
	waiting.Store("connecting to Kafka")
	var routes atomic.Pointer[http.Handler]
	starting := http.NewServeMux()
	starting.HandleFunc("GET /healthz", healthz)
	starting.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		httpError(w, http.StatusServiceUnavailable, "not_ready", waiting.Load().(string))
	})
	starting.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		httpError(w, http.StatusServiceUnavailable, "not_ready", "the worker is starting: "+waiting.Load().(string))
	})
	var startingH http.Handler = guard(cfg.HTTP, starting)
	routes.Store(&startingH)
	srv, err := newServer(cfg.HTTP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*routes.Load()).ServeHTTP(w, r)
	}), log)
	if err != nil {
		return err
	}
	ln, err := listen(cfg.HTTP, cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	go func() {
		var err error
		if cfg.HTTP.TLS != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	log.Info("http listening", "addr", ln.Addr().String(), "tls", cfg.HTTP.TLS != nil)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ReplyTimeout+5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	unreachable := func(err error) { waiting.Store("waiting for Kafka: " + err.Error()) }

	report, err := connect(ctx, kc, log, unreachable)
	if err != nil {
		return err
	}
	log.Info("connected to Kafka", "connection", report.Connection, "cluster_id", report.ClusterID, "brokers", report.Brokers)
	waiting.Store("starting the runtime")
	rt, err := runtime(cfg, kc, app, log, m)
	if err != nil {
		return err
	}
	m.attach(rt)
	// The runtime outlives intake: it stops after the HTTP server has
	// finished the requests in flight.
	rtCtx, stopRuntime := context.WithCancel(context.Background())
	defer stopRuntime()
	runErr := make(chan error, 1)
	go func() {
		runErr <- retryUnreachable(rtCtx, log, "runtime", unreachable, func() error { return rt.Run(rtCtx) })
	}()
	go logRecovery(rtCtx, rt, log)

	var gw *gateway
	err = retryUnreachable(rtCtx, log, "gateway", unreachable, func() (err error) {
		gw, err = newGateway(rtCtx, cfg, rt, m, auth, log)
		return err
	})
	if err != nil {
		return err
	}
	defer gw.close()
	gwRoutes := gw.routes()
	routes.Store(&gwRoutes)
	log.Info("worker running", "app", cfg.App, "http", ln.Addr().String())
	select {
	case <-ctx.Done():
		log.Info("stopping: no new requests; finishing those in flight")
	case err = <-runErr:
		log.Error("runtime stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ReplyTimeout+5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err != nil {
		return err
	}
	stopRuntime()
	if err := <-runErr; err != nil {
		return err
	}
	log.Info("worker stopped")
	return nil
}

// retryUnreachable runs f again while it fails because no broker is
// reachable (the broker is restarting), and returns any other outcome.
// unreachable, when set, hears each such failure.
func retryUnreachable(ctx context.Context, log *slog.Logger, what string, unreachable func(error), f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil || !errors.Is(err, broker.ErrNoBroker) {
			return err
		}
		if unreachable != nil {
			unreachable(err)
		}
		log.Warn("no Kafka broker reachable; retrying", "what", what, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

// connect checks the connection, waiting for the brokers while none is
// reachable (a worker started during a broker restart must not exit); any
// other failure (credentials, TLS) is returned at once.
func connect(ctx context.Context, kc broker.Config, log *slog.Logger, unreachable func(error)) (report *broker.Report, err error) {
	err = retryUnreachable(ctx, log, "connection check", unreachable, func() error {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		report, err = broker.Check(cctx, kc, log)
		return err
	})
	return report, err
}

// logRecovery logs the restore progress until every partition has recovered.
func logRecovery(ctx context.Context, rt *processor.Runtime, log *slog.Logger) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-rt.Ready():
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			var restored, total int64
			for _, p := range rt.Partitions(ctx) {
				restored += p.Restored
				total += p.Total
			}
			log.Info("recovering tables", "restored", restored, "total", total)
		}
	}
}
