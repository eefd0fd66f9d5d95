package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/partita-dev/partita/internal/envyaml"
	"gopkg.in/yaml.v3"
)

// Lookup finds an environment variable, as os.LookupEnv does. Passing it in
// (rather than reading the process environment) keeps loading testable.
type Lookup func(name string) (string, bool)

// The environment variables [ApplyEnv] reads.
const (
	EnvBootstrapServers   = "KAFKA_BOOTSTRAP_SERVERS" // comma-separated host:port list
	EnvAuth               = "KAFKA_AUTH"              // none | plain | scram-sha-256 | scram-sha-512 | mtls
	EnvUsername           = "KAFKA_USERNAME"
	EnvPassword           = "KAFKA_PASSWORD"
	EnvPasswordFile       = "KAFKA_PASSWORD_FILE"
	EnvTLS                = "KAFKA_TLS" // true | false
	EnvCAFile             = "KAFKA_CA_FILE"
	EnvCertFile           = "KAFKA_CERT_FILE"
	EnvKeyFile            = "KAFKA_KEY_FILE"
	EnvTLSServerName      = "KAFKA_TLS_SERVER_NAME"
	EnvInsecureSkipVerify = "KAFKA_TLS_INSECURE_SKIP_VERIFY" // true | false; development only
	EnvClientID           = "KAFKA_CLIENT_ID"
	EnvVersion            = "KAFKA_VERSION"
)

// FromEnv reads a Config from the KAFKA_* environment variables.
func FromEnv(lookup Lookup) (Config, error) { return ApplyEnv(Config{}, lookup) }

// ApplyEnv returns c with every field whose KAFKA_* variable is set replaced
// by the variable's value: the environment overrides a file. Every malformed
// value is reported at once.
func ApplyEnv(c Config, lookup Lookup) (Config, error) {
	var problems []error
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := lookup(name); ok {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				problems = append(problems, fmt.Errorf("  - %s=%q is not true or false", name, v))
				return
			}
			*dst = b
		}
	}
	if v, ok := lookup(EnvBootstrapServers); ok {
		c.BootstrapServers = SplitServers(v)
	}
	var auth string
	str(EnvAuth, &auth)
	if auth != "" {
		c.Auth = Auth(strings.ToLower(auth))
	}
	str(EnvUsername, &c.Username)
	if v, ok := lookup(EnvPassword); ok {
		c.Password = Secret(v)
	}
	str(EnvPasswordFile, &c.PasswordFile)
	boolean(EnvTLS, &c.TLS.Enabled)
	str(EnvCAFile, &c.TLS.CAFile)
	str(EnvCertFile, &c.TLS.CertFile)
	str(EnvKeyFile, &c.TLS.KeyFile)
	str(EnvTLSServerName, &c.TLS.ServerName)
	boolean(EnvInsecureSkipVerify, &c.TLS.InsecureSkipVerify)
	str(EnvClientID, &c.ClientID)
	str(EnvVersion, &c.Version)
	if len(problems) > 0 {
		return c, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// SplitServers splits a comma-separated list of host:port addresses.
func SplitServers(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseYAML reads a Config from YAML, expanding ${env.NAME} through lookup:
//
//	bootstrap_servers: [b-1.msk.example:9096]
//	auth: scram-sha-512
//	username: orders
//	password: ${env.MSK_PASSWORD}
//	tls:
//	  ca_file: /etc/partita/msk-ca.pem
//
// tls is either a boolean or a mapping; a mapping turns TLS on unless it says
// enabled: false.
func ParseYAML(data []byte, lookup Lookup) (Config, error) {
	var c Config
	if err := envyaml.Decode(data, envyaml.Lookup(lookup), &c); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return c, nil
}

// UnmarshalYAML accepts `tls: true` as well as a mapping of TLS settings.
func (t *TLS) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = TLS{}
		return n.Decode(&t.Enabled)
	}
	type plain TLS
	p := plain{Enabled: true}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*t = TLS(p)
	return nil
}
