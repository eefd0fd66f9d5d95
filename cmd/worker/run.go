package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/partita-dev/partita/internal/envyaml"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/sample"
)

// config is the worker's configuration.
type config struct {
	App      string        `yaml:"app"`
	HTTPAddr string        `yaml:"http_addr"`
	DataDir  string        `yaml:"data_dir"`
	Kafka    broker.Config `yaml:"kafka"`
}

// The worker's own environment variables (Kafka's are in package broker).
const (
	envHTTPAddr = "PARTITA_HTTP_ADDR"
	envDataDir  = "PARTITA_DATA_DIR"
	envApp      = "PARTITA_APP"
)

// run is the whole command, with its inputs passed in so tests can drive it.
func run(ctx context.Context, args []string, lookup envyaml.Lookup, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	cfg, err := loadConfig(cmd, args, lookup, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	switch cmd {
	case "run":
		err = serve(ctx, cfg, log)
	case "check":
		err = check(ctx, cfg, log, stdout)
	default:
		fmt.Fprintf(stderr, "worker: unknown command %q (commands: run, check)\n", cmd)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// loadConfig reads the file, then the environment, then the flags, and
// validates the result, reporting every problem at once.
func loadConfig(cmd string, args []string, lookup envyaml.Lookup, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("worker "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file")
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated (none: embedded broker)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (default :8080)")
	dataDir := fs.String("data-dir", "", "directory for local state (default ./data)")
	app := fs.String("app", "", "application name, the topic prefix (default shop)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var cfg config
	var problems []error
	if *file != "" {
		data, err := os.ReadFile(*file)
		if err == nil {
			err = envyaml.Decode(data, lookup, &cfg)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("config file %s: %w", *file, err))
		}
	}
	kafka, err := broker.ApplyEnv(cfg.Kafka, lookup)
	if err != nil {
		problems = append(problems, err)
	}
	cfg.Kafka = kafka
	for name, dst := range map[string]*string{envHTTPAddr: &cfg.HTTPAddr, envDataDir: &cfg.DataDir, envApp: &cfg.App} {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "brokers":
			cfg.Kafka.BootstrapServers = broker.SplitServers(*brokers)
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		case "data-dir":
			cfg.DataDir = *dataDir
		case "app":
			cfg.App = *app
		}
	})
	cfg = cfg.withDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return config{}, errors.Join(problems...)
	}
	return cfg, nil
}

func (c config) withDefaults() config {
	if c.App == "" {
		c.App = "shop"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	return c
}

// kafka returns the connection to use, starting the embedded broker when no
// bootstrap servers are configured. stop releases what it started.
func kafka(cfg config, log *slog.Logger) (broker.Config, func(), error) {
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

func check(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
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

// serve runs the sample application's entities and serves /healthz until
// ctx ends. The HTTP gateway arrives with issue 6.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	kc, stop, err := kafka(cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	r, err := broker.Check(cctx, kc, log)
	cancel()
	if err != nil {
		return err
	}
	log.Info("connected to Kafka", "connection", r.Connection, "cluster_id", r.ClusterID, "brokers", r.Brokers)
	rt, err := processor.New(processor.Config{App: cfg.App, Kafka: kc, DataDir: cfg.DataDir, Log: log},
		sample.NewCustomer(), sample.NewCart())
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- rt.Run(ctx) }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("worker running", "app", cfg.App, "http", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	err = <-runErr // Run returns when ctx ends or an entity fails
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err != nil {
		return err
	}
	log.Info("worker stopped")
	return nil
}
