// Package broker holds Partita's Kafka connection settings and turns them into
// a client configuration for the managed clusters Partita runs on: plaintext,
// SASL PLAIN (Confluent Cloud), SASL SCRAM-SHA-256/512 (MSK, Aiven, Zilla) and
// TLS client certificates (Aiven, Exoscale).
//
// Contract:
//   - A [Config] comes from the environment ([FromEnv]), a YAML document
//     ([ParseYAML], with ${env.NAME} expansion) or code; [Config.Validate]
//     reports every problem at once, and nothing connects with an invalid one.
//   - Passwords are [Secret] values: they print, log and marshal as
//     "[redacted]". No error or log line of this package contains one.
//   - Connection failures go through [Explain], which returns an error that
//     names the cause and what to change, testable with errors.Is against the
//     sentinel errors below.
//
// The package is shared by the worker and the runtime; it is the only place
// that knows how the settings map onto sarama.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/IBM/sarama"
)

// Auth is how the client authenticates to the brokers.
type Auth string

// The supported authentication modes.
const (
	AuthNone        Auth = "none"          // no authentication (plaintext or TLS)
	AuthPlain       Auth = "plain"         // SASL PLAIN: Confluent Cloud API key and secret
	AuthSCRAMSHA256 Auth = "scram-sha-256" // SASL SCRAM-SHA-256: Aiven SASL port, Zilla
	AuthSCRAMSHA512 Auth = "scram-sha-512" // SASL SCRAM-SHA-512: AWS MSK
	AuthMTLS        Auth = "mtls"          // TLS client certificate: Aiven, Exoscale
)

// authNames lists every supported Auth, in documentation order.
var authNames = []Auth{AuthNone, AuthPlain, AuthSCRAMSHA256, AuthSCRAMSHA512, AuthMTLS}

func (a Auth) sasl() bool { return a == AuthPlain || a == AuthSCRAMSHA256 || a == AuthSCRAMSHA512 }

func (a Auth) known() bool {
	for _, k := range authNames {
		if a == k {
			return true
		}
	}
	return false
}

// Secret is a value that must never be shown: it formats, logs and marshals
// as "[redacted]". Use [Secret.Reveal] where the value itself is needed.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]" (or "" for an empty secret).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON, YAML) from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// TLS holds the TLS settings. TLS is on when Enabled is set, and always for
// [AuthMTLS].
type TLS struct {
	Enabled  bool   `yaml:"enabled" json:"enabled"`
	CAFile   string `yaml:"ca_file" json:"ca_file,omitempty"`     // PEM; when empty the system roots are trusted
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"` // PEM client certificate (mtls)
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`   // PEM private key, PKCS#8 or PKCS#1 (mtls)
	// ServerName overrides the host name the broker certificate is checked against.
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify accepts any broker certificate. Development only: it
	// is logged as a warning at every connection set-up.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Config is a Kafka connection. The zero value with no BootstrapServers means
// "no cluster configured": the worker then starts an embedded broker.
type Config struct {
	BootstrapServers []string `yaml:"bootstrap_servers" json:"bootstrap_servers"`
	Auth             Auth     `yaml:"auth" json:"auth"`
	Username         string   `yaml:"username" json:"username,omitempty"`
	// Password is the SASL password. Set it from the environment
	// (KAFKA_PASSWORD, or ${env.NAME} in YAML) or use PasswordFile.
	Password     Secret `yaml:"password" json:"password,omitempty"`
	PasswordFile string `yaml:"password_file" json:"password_file,omitempty"`
	TLS          TLS    `yaml:"tls" json:"tls"`
	ClientID     string `yaml:"client_id" json:"client_id"`
	// Version is the Kafka protocol version the client speaks, e.g. "3.6.0".
	Version string `yaml:"version" json:"version"`
	// MaxRecordBytes is the largest record Partita's producers write
	// (their Producer.MaxMessageBytes). The runtime also reads each
	// topic's max.message.bytes from the cluster and keeps below it; this
	// is the limit where the principal may not describe topics. Default:
	// what fits Kafka's default max.message.bytes (1,048,588).
	MaxRecordBytes int `yaml:"max_record_bytes,omitempty" json:"max_record_bytes,omitempty"`
}

// Defaults used where a Config leaves a field empty.
const (
	DefaultClientID = "partita"
	DefaultVersion  = "3.6.0"
	// DefaultMaxRecordBytes fits a record batch of one record under
	// Kafka's default max.message.bytes (1,048,588), with room for the
	// batch header and compression framing.
	DefaultMaxRecordBytes = 1_047_000
)

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Auth == "" {
		c.Auth = AuthNone
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.Auth == AuthMTLS {
		c.TLS.Enabled = true
	}
	return c
}

// Embedded reports whether no cluster is configured.
func (c Config) Embedded() bool { return len(c.BootstrapServers) == 0 }

// Validate reports every problem of c at once, joined, wrapped in
// [ErrInvalidConfig]. It also checks that the named files can be read.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf("  - "+format, args...)) }

	for _, s := range c.BootstrapServers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			add("bootstrap server %q is not host:port", s)
		}
	}
	if !c.Auth.known() {
		add("auth %q is unknown: use one of %s", c.Auth, joinAuths())
	}
	if c.MaxRecordBytes < 1024 {
		add("max_record_bytes %d is too small (at least 1024)", c.MaxRecordBytes)
	}
	if c.Embedded() && c.Auth != AuthNone {
		add("auth %q is set but no bootstrap servers are: set KAFKA_BOOTSTRAP_SERVERS (or bootstrap_servers)", c.Auth)
	}
	if c.Auth.sasl() {
		if c.Username == "" {
			add("auth %s needs a username (KAFKA_USERNAME)", c.Auth)
		}
		switch {
		case c.Password != "" && c.PasswordFile != "":
			add("the password is given both inline and as a file (%s): give one", c.PasswordFile)
		case c.Password == "" && c.PasswordFile == "":
			add("auth %s needs a password: set KAFKA_PASSWORD or KAFKA_PASSWORD_FILE", c.Auth)
		case c.PasswordFile != "":
			if err := readable(c.PasswordFile); err != nil {
				add("password file: %v", err)
			}
		}
	} else if c.Auth.known() && (c.Username != "" || c.Password != "" || c.PasswordFile != "") {
		add("a username or password is set but auth is %s: set auth to plain, scram-sha-256 or scram-sha-512", c.Auth)
	}
	if c.Auth == AuthMTLS {
		if c.TLS.CertFile == "" {
			add("auth mtls needs a client certificate (tls.cert_file, KAFKA_CERT_FILE)")
		}
		if c.TLS.KeyFile == "" {
			add("auth mtls needs the client certificate's key (tls.key_file, KAFKA_KEY_FILE)")
		}
	} else if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
		add("a client certificate or key is set but auth is %s: set auth to mtls", c.Auth)
	}
	if !c.TLS.Enabled {
		if c.TLS.CAFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify {
			add("TLS settings are given but TLS is off: set tls to true (KAFKA_TLS=true)")
		}
	}
	for _, f := range []struct{ what, path string }{
		{"CA file", c.TLS.CAFile}, {"certificate file", c.TLS.CertFile}, {"key file", c.TLS.KeyFile},
	} {
		if f.path != "" {
			if err := readable(f.path); err != nil {
				add("%s: %v", f.what, err)
			}
		}
	}
	if _, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		add("version %q is not a Kafka version such as %s", c.Version, DefaultVersion)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(problems...))
}

func joinAuths() string {
	names := make([]string, len(authNames))
	for i, a := range authNames {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// password returns the SASL password, read from PasswordFile when set.
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password.Reveal(), nil
	}
	data, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// Describe is a one-line summary of c with no secrets: brokers, auth, user, TLS.
func (c Config) Describe() string {
	c = c.WithDefaults()
	if c.Embedded() {
		return "embedded broker"
	}
	s := fmt.Sprintf("brokers %s, auth %s", strings.Join(c.BootstrapServers, ","), c.Auth)
	if c.Auth.sasl() {
		s += fmt.Sprintf(" as %q", c.Username)
	}
	switch {
	case !c.TLS.Enabled:
		s += ", no TLS"
	case c.TLS.InsecureSkipVerify:
		s += ", TLS without verification (insecure)"
	case c.TLS.CAFile != "":
		s += ", TLS with CA " + c.TLS.CAFile
	default:
		s += ", TLS with the system CAs"
	}
	return s
}
