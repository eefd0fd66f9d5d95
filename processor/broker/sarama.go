package broker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// Sarama builds the client configuration for c. It validates c first and
// logs a warning through log when TLS verification is switched off.
func (c Config) Sarama(log *slog.Logger) (*sarama.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version, _ = sarama.ParseKafkaVersion(c.Version) // checked by Validate
	sc.Net.DialTimeout = 10 * time.Second
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 200 * time.Millisecond
	sc.Producer.Return.Successes = true // Partita's producers want to know what was delivered
	sc.Producer.MaxMessageBytes = c.MaxRecordBytes

	if c.TLS.Enabled {
		tc, err := c.tlsConfig(log)
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.Auth.sasl() {
		pw, err := c.password()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = c.Username
		sc.Net.SASL.Password = pw
		switch c.Auth {
		case AuthPlain:
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case AuthSCRAMSHA256:
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case AuthSCRAMSHA512:
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		}
	}
	return sc, nil
}

func (c Config) tlsConfig(log *slog.Logger) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrInvalidConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidConfig, c.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			// tls's message names the files and the mismatch, never key bytes.
			return nil, fmt.Errorf("%w: client certificate: %w", ErrInvalidConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.TLS.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
		if log != nil {
			log.Warn("TLS certificate verification is OFF (tls.insecure_skip_verify): anyone on the path can read and change Kafka traffic; development only")
		}
	}
	return tc, nil
}

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }
