package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/internal/envyaml"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
)

// Config is the worker's configuration. Sources, later ones winning: the
// YAML file (--config), the environment, flags. Secrets come from the
// environment or files only.
type Config struct {
	// The runtime's settings, at the top level of the file: app,
	// data_dir, partitions, replication, create_topics, hot_standby,
	// state_reads, table_cache and kafka. The worker's defaults differ
	// from the runtime's in three: app defaults to the application's own
	// name (worker.App.Name); create_topics and state_reads default to
	// true. Without Kafka bootstrap servers the worker starts an embedded
	// broker, with its data in data_dir.
	processor.Config `yaml:",inline"`
	// HTTPAddr is where the gateway, health, metrics and dashboard listen.
	HTTPAddr string `yaml:"http_addr"`
	// ReplyTimeout bounds how long a command request waits for its reply.
	ReplyTimeout time.Duration `yaml:"reply_timeout"`
	// ReadTimeout bounds how long a query with after=<position> waits.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// HTTP sets the HTTP server's limits, timeouts, cross-site rules and
	// TLS.
	HTTP HTTPConfig `yaml:"http"`
	// Auth configures how callers authenticate (JWT, API keys); without
	// it authentication is off, for development only.
	Auth AuthConfig `yaml:"auth"`
	// Access sets the rules of whatever declares none.
	Access AccessConfig `yaml:"access"`
}

// newConfig returns the configuration a file is read onto: the worker's
// defaults of the settings whose zero value means something else (a
// bool's false).
func newConfig() Config {
	return Config{Config: processor.Config{CreateTopics: true, StateReads: true}}
}

// AccessConfig holds the access rules the configuration sets: the
// application's default, for commands and views that declare no rule
// (entities.Access, entities.CommandAccess, views.Access), and the rules of
// the worker's own pages. A rule is written public, authenticated,
// internal, claim:NAME or claim:NAME=V1|V2. /healthz and /readyz are always
// open.
type AccessConfig struct {
	// Default is the rule of parts that declare none (default
	// "authenticated").
	Default string `yaml:"default"`
	// Dashboard, Status and Metrics guard the dashboard page, /api/status
	// (the dashboard's data) and /metrics (default "authenticated").
	Dashboard string `yaml:"dashboard"`
	Status    string `yaml:"status"`
	Metrics   string `yaml:"metrics"`
}

// rules are the parsed AccessConfig.
type rules struct{ def, dashboard, status, metrics access.Rule }

func (a AccessConfig) rules() (rules, error) {
	var r rules
	var problems []error
	for _, f := range []struct {
		name string
		val  string
		dst  *access.Rule
	}{{"default", a.Default, &r.def}, {"dashboard", a.Dashboard, &r.dashboard}, {"status", a.Status, &r.status}, {"metrics", a.Metrics, &r.metrics}} {
		rule, err := access.Parse(f.val)
		if err != nil {
			problems = append(problems, fmt.Errorf("access.%s: %w", f.name, err))
		}
		*f.dst = rule
	}
	return r, errors.Join(problems...)
}

// The worker's own environment variables (Kafka's are in package broker).
const (
	EnvHTTPAddr = "PARTITA_HTTP_ADDR"
	EnvDataDir  = "PARTITA_DATA_DIR"
	EnvApp      = "PARTITA_APP"
)

// Defaults of Config.
const (
	DefaultHTTPAddr     = ":8080"
	DefaultDataDir      = "data"
	DefaultReplyTimeout = 10 * time.Second
	DefaultReadTimeout  = 5 * time.Second
	// DefaultAccess is the rule of commands, views and the worker's pages
	// that neither declare nor configure one. With authentication off it
	// admits everyone (development mode); internal commands never.
	DefaultAccess = "authenticated"
)

func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	for _, rule := range []*string{&c.Access.Default, &c.Access.Dashboard, &c.Access.Status, &c.Access.Metrics} {
		if *rule == "" {
			*rule = DefaultAccess
		}
	}
	c.HTTP = c.HTTP.withDefaults(c.ReplyTimeout)
	return c
}

// load reads the file, then the environment, then the flags, and validates
// the result, reporting every problem at once.
func load(cmd string, args []string, lookup envyaml.Lookup, stderr io.Writer) (Config, []string, error) {
	fs := flag.NewFlagSet("worker "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file")
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated (none: embedded broker)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (default "+DefaultHTTPAddr+")")
	dataDir := fs.String("data-dir", "", "directory for local state (default ./"+DefaultDataDir+")")
	app := fs.String("app", "", "application name, the topic prefix (default: the application's own)")
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	cfg := newConfig()
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
	kafka, err := broker.ApplyEnv(cfg.Kafka, broker.Lookup(lookup))
	if err != nil {
		problems = append(problems, err)
	}
	cfg.Kafka = kafka
	for name, dst := range map[string]*string{EnvHTTPAddr: &cfg.HTTPAddr, EnvDataDir: &cfg.DataDir, EnvApp: &cfg.App} {
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
	if cfg.Partitions < 0 || cfg.Replication < 0 {
		problems = append(problems, errors.New("partitions and replication must not be negative"))
	}
	if _, err := cfg.Access.rules(); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, cfg.HTTP.validate()...)
	problems = append(problems, cfg.Auth.validate()...)
	if len(problems) > 0 {
		return Config{}, nil, errors.Join(problems...)
	}
	return cfg, fs.Args(), nil
}
