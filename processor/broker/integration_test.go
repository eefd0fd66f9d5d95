package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/processor/broker"
)

// transcript collects every log line and error string of a test, to check
// afterwards that no password appears in any of them.
type transcript struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (tr *transcript) Write(p []byte) (int, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.buf.Write(p)
}

func (tr *transcript) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(tr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (tr *transcript) record(err error) {
	if err != nil {
		fmt.Fprintln(tr, "error:", err)
	}
}

// assertNoSecret fails if any secret occurs in what tr collected.
func (tr *transcript) assertNoSecret(t *testing.T, secrets ...string) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.buf.Len() == 0 {
		t.Fatal("transcript is empty: nothing was collected")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(tr.buf.String(), s) {
			t.Errorf("a password appears in the logs or errors:\n%s", tr.buf.String())
		}
	}
}

// listenerConfigs is one working configuration per listener and mechanism
// of the test broker.
func listenerConfigs(e *kafkatest.Env) map[string]broker.Config {
	user := func(addr string, auth broker.Auth, tls bool) broker.Config {
		c := broker.Config{BootstrapServers: []string{addr}, Auth: auth, Username: e.User.Name, Password: broker.Secret(e.User.Password)}
		if tls {
			c.TLS = broker.TLS{Enabled: true, CAFile: e.CAFile}
		}
		return c
	}
	return map[string]broker.Config{
		"PLAINTEXT":                    {BootstrapServers: []string{e.Plaintext}},
		"SASL_PLAINTEXT/PLAIN":         user(e.SASLPlaintext, broker.AuthPlain, false),
		"SASL_PLAINTEXT/SCRAM-SHA-256": user(e.SASLPlaintext, broker.AuthSCRAMSHA256, false),
		"SASL_PLAINTEXT/SCRAM-SHA-512": user(e.SASLPlaintext, broker.AuthSCRAMSHA512, false),
		"SASL_SSL/PLAIN":               user(e.SASLSSL, broker.AuthPlain, true),
		"SASL_SSL/SCRAM-SHA-256":       user(e.SASLSSL, broker.AuthSCRAMSHA256, true),
		"SASL_SSL/SCRAM-SHA-512":       user(e.SASLSSL, broker.AuthSCRAMSHA512, true),
		"SSL/mTLS": {BootstrapServers: []string{e.SSL}, Auth: broker.AuthMTLS,
			TLS: broker.TLS{CAFile: e.CAFile, CertFile: e.ClientCertFile, KeyFile: e.ClientKeyFile}},
	}
}

func TestProduceConsumeThroughEveryListener(t *testing.T) {
	e := kafkatest.Require(t)
	tr := &transcript{}
	admin := newAdmin(t, e)
	for name, cfg := range listenerConfigs(e) {
		t.Run(name, func(t *testing.T) {
			topic := "broker-test." + strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(name)) + fmt.Sprint(time.Now().UnixNano())
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client, err := broker.Connect(ctx, cfg, tr.logger())
			tr.record(err)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			producer, err := sarama.NewSyncProducerFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			want := "hello over " + name
			var part int32
			var off int64
			for try := 0; ; try++ { // a new topic's metadata can take a moment to reach every listener
				part, off, err = producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(want)})
				if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) || try == 50 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			tr.record(err)
			if err != nil {
				t.Fatal(err)
			}
			consumer, err := sarama.NewConsumerFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			pc, err := consumer.ConsumePartition(topic, part, off)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			select {
			case m := <-pc.Messages():
				if string(m.Value) != want || string(m.Key) != "k" {
					t.Fatalf("consumed %q=%q, want k=%q", m.Key, m.Value, want)
				}
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatal("no record consumed within a minute")
			}
		})
	}
	tr.assertNoSecret(t, e.User.Password, e.SCRAM256Only.Password)
}

func TestConnectFailuresNameTheCause(t *testing.T) {
	e := kafkatest.Require(t)
	tr := &transcript{}
	wrong := "wrong-" + e.User.Password[3:]
	sasl := func(addr string, auth broker.Auth, user, pw string) broker.Config {
		return broker.Config{BootstrapServers: []string{addr}, Auth: auth, Username: user, Password: broker.Secret(pw)}
	}
	withTLS := func(c broker.Config, ca string) broker.Config {
		c.TLS = broker.TLS{Enabled: true, CAFile: ca}
		return c
	}
	cases := []struct {
		name  string
		cfg   broker.Config
		cause error
		says  []string
	}{
		{"wrong password", sasl(e.SASLPlaintext, broker.AuthSCRAMSHA512, e.User.Name, wrong),
			broker.ErrAuthFailed, []string{"authentication failed", `user "partita"`, "SCRAM-SHA-512", "password"}},
		{"wrong PLAIN password over TLS", withTLS(sasl(e.SASLSSL, broker.AuthPlain, e.User.Name, wrong), e.CAFile),
			broker.ErrAuthFailed, []string{"authentication failed", `user "partita"`, "PLAIN"}},
		{"unknown user", sasl(e.SASLPlaintext, broker.AuthSCRAMSHA256, "ghost", wrong),
			broker.ErrAuthFailed, []string{"authentication failed", `user "ghost"`, "does not exist"}},
		{"mechanism without a credential", sasl(e.SASLPlaintext, broker.AuthSCRAMSHA512, e.SCRAM256Only.Name, e.SCRAM256Only.Password),
			broker.ErrAuthFailed, []string{"authentication failed", `user "scram256only"`, "no SCRAM-SHA-512 credential"}},
		{"CA not trusted", withTLS(sasl(e.SASLSSL, broker.AuthPlain, e.User.Name, e.User.Password), e.OtherCAFile),
			broker.ErrUntrustedServer, []string{"not trusted", "Partita test CA", "KAFKA_CA_FILE"}},
		{"mTLS without a client certificate", withTLS(broker.Config{BootstrapServers: []string{e.SSL}}, e.CAFile),
			broker.ErrClientCertRequired, []string{"requires a TLS client certificate", "KAFKA_CERT_FILE"}},
		{"TLS spoken to the plaintext port", withTLS(broker.Config{BootstrapServers: []string{e.Plaintext}}, e.CAFile),
			broker.ErrTLSToPlaintext, []string{"does not speak TLS", "KAFKA_TLS=false"}},
		{"plaintext spoken to the TLS port", broker.Config{BootstrapServers: []string{e.SSL}},
			broker.ErrPlaintextToTLS, []string{"speaks TLS", "KAFKA_TLS=true"}},
		{"no SASL on the SASL port", broker.Config{BootstrapServers: []string{e.SASLPlaintext}},
			broker.ErrSASLRequired, []string{"requires SASL", "KAFKA_AUTH"}},
		{"expired client certificate", broker.Config{BootstrapServers: []string{e.SSL}, Auth: broker.AuthMTLS,
			TLS: broker.TLS{CAFile: e.CAFile, CertFile: e.ExpiredCertFile, KeyFile: e.ExpiredKeyFile}},
			broker.ErrCertificateExpired, []string{"expired", e.ExpiredCertFile}},
		{"host-name mismatch", broker.Config{BootstrapServers: []string{e.SASLSSL}, Auth: broker.AuthPlain, Username: e.User.Name, Password: broker.Secret(e.User.Password),
			TLS: broker.TLS{Enabled: true, CAFile: e.CAFile, ServerName: "kafka.wrong.example"}},
			broker.ErrServerNameMismatch, []string{"not valid for", "kafka.wrong.example", "tls.server_name"}},
		{"nothing listening", broker.Config{BootstrapServers: []string{kafkatest.ClosedAddr(t)}},
			broker.ErrNoBroker, []string{"nothing listens there", "connection refused", "KAFKA_BOOTSTRAP_SERVERS"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client, err := broker.Connect(ctx, tc.cfg, tr.logger())
			tr.record(err)
			if err == nil {
				client.Close()
				t.Fatal("connected; want a failure")
			}
			if !errors.Is(err, tc.cause) {
				t.Fatalf("want errors.Is(err, %v), got %v", tc.cause, err)
			}
			var ce *broker.ConnError
			if !errors.As(err, &ce) || ce.Broker != tc.cfg.BootstrapServers[0] {
				t.Errorf("want a ConnError naming %s, got %#v", tc.cfg.BootstrapServers[0], err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message does not say %q: %v", s, err)
				}
			}
		})
	}
	tr.assertNoSecret(t, e.User.Password, e.SCRAM256Only.Password, wrong)
}

func newAdmin(t *testing.T, e *kafkatest.Env) sarama.ClusterAdmin {
	t.Helper()
	sc, err := broker.Config{BootstrapServers: []string{e.Plaintext}}.Sarama(nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin([]string{e.Plaintext}, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}
