package worker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/internal/kafkatest"
)

// runWorker runs the worker command in-process with exactly the given
// environment and returns its exit code and everything it printed.
func runWorker(t *testing.T, envVars map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := envVars[k]; return v, ok }
	code := Main(ctx, App{}, args, lookup, &out, &out)
	return code, out.String()
}

// TestCheckEveryAuthModeAndFailure runs `worker check` against every listener
// of the real broker, and against each misconfiguration, and asserts what it
// prints; then that no password appears anywhere in all of that output.
func TestCheckEveryAuthModeAndFailure(t *testing.T) {
	e := kafkatest.Require(t)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(e.User.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := "wrong-" + e.User.Password[3:]
	user := map[string]string{"KAFKA_USERNAME": e.User.Name, "KAFKA_PASSWORD": e.User.Password}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		env  map[string]string
		code int
		says []string
	}{
		{"plaintext", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.Plaintext}, 0,
			[]string{"Kafka connection OK", "cluster id:", "id=1 " + e.Plaintext, "auth none, no TLS", "describe topics:  yes", "create topics:    yes"}},
		{"SASL_PLAINTEXT PLAIN", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLPlaintext, "KAFKA_AUTH", "plain"), 0,
			[]string{"Kafka connection OK", `auth plain as "partita"`}},
		{"SASL_PLAINTEXT SCRAM-SHA-256", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLPlaintext, "KAFKA_AUTH", "scram-sha-256"), 0,
			[]string{"Kafka connection OK", "auth scram-sha-256"}},
		{"SASL_SSL SCRAM-SHA-512, password file", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.SASLSSL, "KAFKA_AUTH": "scram-sha-512",
			"KAFKA_USERNAME": e.User.Name, "KAFKA_PASSWORD_FILE": pwFile, "KAFKA_TLS": "true", "KAFKA_CA_FILE": e.CAFile}, 0,
			[]string{"Kafka connection OK", "auth scram-sha-512", "TLS with CA " + e.CAFile}},
		{"SSL mTLS", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.SSL, "KAFKA_AUTH": "mtls", "KAFKA_CA_FILE": e.CAFile,
			"KAFKA_CERT_FILE": e.ClientCertFile, "KAFKA_KEY_FILE": e.ClientKeyFile}, 0,
			[]string{"Kafka connection OK", "auth mtls"}},
		{"insecure skip verify", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLSSL, "KAFKA_AUTH", "plain", "KAFKA_TLS", "true", "KAFKA_TLS_INSECURE_SKIP_VERIFY", "true"), 0,
			[]string{"level=WARN", "verification is OFF", "Kafka connection OK"}},
		{"wrong password", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLPlaintext, "KAFKA_AUTH", "scram-sha-256", "KAFKA_PASSWORD", wrong), 1,
			[]string{"authentication failed", `user "partita"`}},
		{"unknown user", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLSSL, "KAFKA_AUTH", "plain", "KAFKA_USERNAME", "ghost", "KAFKA_TLS", "true", "KAFKA_CA_FILE", e.CAFile), 1,
			[]string{"authentication failed", `user "ghost"`}},
		{"mechanism without credential", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.SASLPlaintext, "KAFKA_AUTH": "scram-sha-512",
			"KAFKA_USERNAME": e.SCRAM256Only.Name, "KAFKA_PASSWORD": e.SCRAM256Only.Password}, 1,
			[]string{"authentication failed", "no SCRAM-SHA-512 credential"}},
		{"CA not trusted", with(user, "KAFKA_BOOTSTRAP_SERVERS", e.SASLSSL, "KAFKA_AUTH", "plain", "KAFKA_TLS", "true", "KAFKA_CA_FILE", e.OtherCAFile), 1,
			[]string{"broker certificate not trusted", "KAFKA_CA_FILE"}},
		{"mTLS without client certificate", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.SSL, "KAFKA_TLS": "true", "KAFKA_CA_FILE": e.CAFile}, 1,
			[]string{"client certificate required"}},
		{"TLS to the plaintext port", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.Plaintext, "KAFKA_TLS": "true", "KAFKA_CA_FILE": e.CAFile}, 1,
			[]string{"TLS spoken to a plaintext listener"}},
		{"nothing listening", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": kafkatest.ClosedAddr(t)}, 1,
			[]string{"no Kafka broker reachable", "connection refused"}},
		{"invalid configuration", map[string]string{"KAFKA_BOOTSTRAP_SERVERS": e.SASLSSL, "KAFKA_AUTH": "mtls",
			"KAFKA_PASSWORD": e.User.Password, "KAFKA_PASSWORD_FILE": pwFile}, 2,
			[]string{"invalid Kafka configuration", "needs a client certificate", "needs the client certificate's key", "username or password is set but auth is mtls"}},
	}
	var all strings.Builder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runWorker(t, tc.env, "check")
			all.WriteString(out)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, s := range tc.says {
				if !strings.Contains(out, s) {
					t.Errorf("output does not say %q:\n%s", s, out)
				}
			}
		})
	}
	for _, secret := range []string{e.User.Password, e.SCRAM256Only.Password, wrong} {
		if strings.Contains(all.String(), secret) {
			t.Fatalf("a password appears in the output of worker check:\n%s", all.String())
		}
	}
}

func TestCheckStartsEmbeddedBrokerWhenNoneConfigured(t *testing.T) {
	code, out := runWorker(t, map[string]string{}, "check", "--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, s := range []string{"started an embedded in-process broker", "Kafka connection OK", "cluster id:       partita-embedded"} {
		if !strings.Contains(out, s) {
			t.Errorf("output does not say %q:\n%s", s, out)
		}
	}
}

func TestUnknownCommandAndFlags(t *testing.T) {
	if code, out := runWorker(t, nil, "frobnicate"); code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %s", code, out)
	}
	if code, out := runWorker(t, nil, "check", "--password", "x"); code != 2 || !strings.Contains(out, "flag provided but not defined: -password") {
		t.Errorf("a password flag must not exist: %d %s", code, out)
	}
}
