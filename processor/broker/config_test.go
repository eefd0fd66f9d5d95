package broker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/processor/broker"
)

func env(m map[string]string) broker.Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// problems splits a Validate error into its reported lines.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if !errors.Is(err, broker.ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	return strings.Split(strings.TrimPrefix(err.Error(), broker.ErrInvalidConfig.Error()+":\n"), "\n")
}

func wantAll(t *testing.T, err error, fragments ...string) {
	t.Helper()
	got := problems(t, err)
	if len(got) != len(fragments) {
		t.Errorf("want %d problems, got %d:\n%s", len(fragments), len(got), strings.Join(got, "\n"))
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("problem %q not reported in:\n%v", f, err)
		}
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  broker.Config
		want []string
	}{
		{"mtls without cert or key", broker.Config{BootstrapServers: []string{"k:9093"}, Auth: broker.AuthMTLS},
			[]string{"needs a client certificate", "needs the client certificate's key"}},
		{"sasl without password", broker.Config{BootstrapServers: []string{"k:9093"}, Auth: broker.AuthSCRAMSHA512, Username: "u"},
			[]string{"needs a password"}},
		{"password inline and as file", broker.Config{BootstrapServers: []string{"k:9093"}, Auth: broker.AuthPlain, Username: "u", Password: "x", PasswordFile: pwFile},
			[]string{"both inline and as a file"}},
		{"unknown auth", broker.Config{BootstrapServers: []string{"k:9093"}, Auth: "kerberos"},
			[]string{`auth "kerberos" is unknown`}},
		{"everything wrong together", broker.Config{
			BootstrapServers: []string{"k"}, Auth: broker.AuthSCRAMSHA256, Password: "x", PasswordFile: "/nonexistent/pw",
			TLS: broker.TLS{CAFile: "/nonexistent/ca.pem", CertFile: "c.pem"}, Version: "banana",
		}, []string{
			`"k" is not host:port`, "needs a username", "both inline and as a file",
			"client certificate or key is set but auth is scram-sha-256", "TLS settings are given but TLS is off",
			"CA file: open /nonexistent/ca.pem", "certificate file: open c.pem", `version "banana"`,
		}},
		{"auth without brokers", broker.Config{Auth: broker.AuthPlain, Username: "u", Password: "x"},
			[]string{"no bootstrap servers"}},
		{"password with auth none", broker.Config{BootstrapServers: []string{"k:9092"}, Password: "x"},
			[]string{"password is set but auth is none"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			wantAll(t, err, tc.want...)
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), `"x"`) {
				t.Errorf("a password appears in %v", err)
			}
		})
	}
}

func TestValidateAcceptsEveryProviderSetup(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem", "pw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	for name, c := range map[string]broker.Config{
		"embedded":        {},
		"plaintext":       {BootstrapServers: []string{"localhost:9092"}},
		"confluent cloud": {BootstrapServers: []string{"pkc.confluent.cloud:9092"}, Auth: broker.AuthPlain, Username: "KEY", Password: "SECRET", TLS: broker.TLS{Enabled: true}},
		"msk":             {BootstrapServers: []string{"b-1.msk:9096", "b-2.msk:9096"}, Auth: broker.AuthSCRAMSHA512, Username: "u", PasswordFile: f("pw"), TLS: broker.TLS{Enabled: true, CAFile: f("ca.pem")}},
		"aiven mtls":      {BootstrapServers: []string{"kafka.aiven:12345"}, Auth: broker.AuthMTLS, TLS: broker.TLS{CAFile: f("ca.pem"), CertFile: f("cert.pem"), KeyFile: f("key.pem")}},
		"zilla":           {BootstrapServers: []string{"zilla:9092"}, Auth: broker.AuthSCRAMSHA256, Username: "u", Password: "p"},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	c, err := broker.FromEnv(env(map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": " b-1:9096, b-2:9096 ,",
		"KAFKA_AUTH":              "SCRAM-SHA-512",
		"KAFKA_USERNAME":          "orders",
		"KAFKA_PASSWORD":          "hunter2",
		"KAFKA_TLS":               "true",
		"KAFKA_CA_FILE":           "/etc/ca.pem",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.BootstrapServers, "|"); got != "b-1:9096|b-2:9096" {
		t.Errorf("servers %q", got)
	}
	if c.Auth != broker.AuthSCRAMSHA512 || c.Username != "orders" || c.Password.Reveal() != "hunter2" || !c.TLS.Enabled || c.TLS.CAFile != "/etc/ca.pem" {
		t.Errorf("got %+v", c)
	}
	_, err = broker.FromEnv(env(map[string]string{"KAFKA_TLS": "yes please", "KAFKA_TLS_INSECURE_SKIP_VERIFY": "maybe"}))
	wantAll(t, err, "KAFKA_TLS=", "KAFKA_TLS_INSECURE_SKIP_VERIFY=")
}

func TestParseYAML(t *testing.T) {
	src := `
bootstrap_servers: [b-1.msk:9096]
auth: scram-sha-512
username: orders
password: ${env.MSK_PASSWORD}
tls:
  ca_file: /etc/msk-ca.pem
`
	c, err := broker.ParseYAML([]byte(src), env(map[string]string{"MSK_PASSWORD": "p#ss: word"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != "p#ss: word" || !c.TLS.Enabled || c.TLS.CAFile != "/etc/msk-ca.pem" || c.Auth != broker.AuthSCRAMSHA512 {
		t.Errorf("got %+v", c)
	}
	c, err = broker.ParseYAML([]byte("bootstrap_servers: [x:1]\nauth: plain\ntls: true\n"), env(nil))
	if err != nil || !c.TLS.Enabled {
		t.Errorf("tls: true: %+v %v", c, err)
	}
	_, err = broker.ParseYAML([]byte("password: ${env.NOPE}\nauht: plain\n"), env(nil))
	if !errors.Is(err, broker.ErrInvalidConfig) || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("undefined variable: %v", err)
	}
	_, err = broker.ParseYAML([]byte("auht: plain\n"), env(nil))
	if !errors.Is(err, broker.ErrInvalidConfig) || !strings.Contains(err.Error(), "auht") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := broker.Config{BootstrapServers: []string{"k:1"}, Auth: broker.AuthPlain, Username: "u", Password: "hunter2"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", c, "pw", c.Password)
	js, _ := json.Marshal(c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), string(js), logged.String(), c.Describe()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
	if !strings.Contains(string(js), "[redacted]") {
		t.Errorf("want [redacted] in %s", js)
	}
}

func TestSaramaConfig(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := broker.Config{BootstrapServers: []string{"k:1"}, Auth: broker.AuthSCRAMSHA256, Username: "u", PasswordFile: pw}.Sarama(nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA256 || sc.Net.SASL.Password != "from-file" || sc.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Errorf("sasl: %+v", sc.Net.SASL)
	}
	if sc.ClientID != broker.DefaultClientID || sc.Version.String() != broker.DefaultVersion {
		t.Errorf("defaults: %s %s", sc.ClientID, sc.Version)
	}
	if _, err := (broker.Config{Auth: "nope"}).Sarama(nil); !errors.Is(err, broker.ErrInvalidConfig) {
		t.Errorf("invalid config built: %v", err)
	}
}

func TestInsecureSkipVerifyWarns(t *testing.T) {
	var logged strings.Builder
	c := broker.Config{BootstrapServers: []string{"k:1"}, TLS: broker.TLS{Enabled: true, InsecureSkipVerify: true}}
	sc, err := c.Sarama(slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Net.TLS.Config.InsecureSkipVerify || !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "verification is OFF") {
		t.Errorf("want a warning, got %q", logged.String())
	}
}
