package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// ConnError is a connection failure with its cause named. errors.Is matches
// its Cause (one of the sentinel errors); errors.Unwrap gives the client's
// original error.
type ConnError struct {
	Cause  error  // a sentinel such as ErrAuthFailed
	Broker string // the address it concerns
	Detail string // what happened and what to change, for a person
	Err    error  // the underlying client error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("kafka %s: %v: %s", e.Broker, e.Cause, e.Detail)
}

// Is reports whether target is e's cause.
func (e *ConnError) Is(target error) bool { return target == e.Cause }

// Unwrap returns the client's original error.
func (e *ConnError) Unwrap() error { return e.Err }

// Explain turns a connection error from a client configured by c into a
// [*ConnError] that names the cause and what to change. When the error alone
// does not tell (a closed connection), it probes the first bootstrap server
// to learn whether it speaks TLS and whether it requires SASL. Errors it
// cannot attribute are returned unchanged; nil stays nil.
func Explain(ctx context.Context, c Config, err error) error {
	if err == nil || errors.Is(err, ErrInvalidConfig) {
		return err
	}
	var already *ConnError
	if errors.As(err, &already) {
		return err
	}
	c = c.WithDefaults()
	addr := strings.Join(c.BootstrapServers, ",")
	if len(c.BootstrapServers) > 0 {
		addr = c.BootstrapServers[0]
	}
	ce := func(cause error, detail string, args ...any) error {
		return &ConnError{Cause: cause, Broker: addr, Detail: fmt.Sprintf(detail, args...), Err: err}
	}
	mech := strings.ToUpper(string(c.Auth))
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		opErr     *net.OpError
		dnsErr    *net.DNSError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return ce(ErrAuthFailed, "the broker rejected user %q with %s: the password is wrong, the user does not exist, "+
			"or the user has no %s credential; check KAFKA_USERNAME, KAFKA_PASSWORD or KAFKA_PASSWORD_FILE, and KAFKA_AUTH", c.Username, mech, mech)
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return ce(ErrMechanismNotEnabled, "the listener does not offer %s; ask the operator which mechanisms it enables, and set KAFKA_AUTH to one of them", mech)
	case errors.As(err, &unknownCA):
		return ce(ErrUntrustedServer, "the broker's certificate is signed by %q, which is not trusted; set tls.ca_file (KAFKA_CA_FILE) to the CA that signed it",
			unknownCA.Cert.Issuer.CommonName)
	case errors.As(err, &hostErr):
		return ce(ErrServerNameMismatch, "the broker's certificate is not valid for %q (%v); connect by a name the certificate lists, or set tls.server_name",
			hostErr.Host, hostErr)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ce(ErrCertificateExpired, "the broker's certificate is expired or not yet valid (%v)", invalid)
	case strings.Contains(msg, "remote error: tls: expired certificate"):
		return ce(ErrCertificateExpired, "the broker rejected the client certificate %s as expired or not yet valid; renew it", c.TLS.CertFile)
	case strings.Contains(msg, "remote error: tls: bad certificate"),
		strings.Contains(msg, "remote error: tls: certificate required"),
		strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "remote error: tls: unknown certificate"),
		strings.Contains(msg, "remote error: tls: revoked certificate"),
		strings.Contains(msg, "remote error: tls: unsupported certificate"):
		if c.TLS.CertFile == "" {
			return ce(ErrClientCertRequired, "the listener requires a TLS client certificate and none was sent; set auth to mtls with tls.cert_file and tls.key_file (KAFKA_CERT_FILE, KAFKA_KEY_FILE)")
		}
		// Brokers rarely say why they refuse a certificate: check the one we sent.
		if cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err == nil && cert.Leaf != nil {
			now := time.Now()
			if now.After(cert.Leaf.NotAfter) {
				return ce(ErrCertificateExpired, "the broker rejected the client certificate %s, which expired on %s; renew it",
					c.TLS.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			if now.Before(cert.Leaf.NotBefore) {
				return ce(ErrCertificateExpired, "the broker rejected the client certificate %s, which is not valid before %s; check the clock",
					c.TLS.CertFile, cert.Leaf.NotBefore.UTC().Format(time.RFC3339))
			}
		}
		return ce(ErrClientCertRejected, "the listener did not accept the client certificate %s; check that a CA the broker trusts signed it", c.TLS.CertFile)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ce(ErrNoBroker, "nothing listens there (connection refused); check KAFKA_BOOTSTRAP_SERVERS and that the broker runs")
	case errors.As(err, &dnsErr):
		return ce(ErrNoBroker, "the host name does not resolve (%v); check KAFKA_BOOTSTRAP_SERVERS", dnsErr)
	case errors.As(err, &opErr) && opErr.Timeout():
		return ce(ErrNoBroker, "no answer in time (%v); check the address, firewalls and security groups", opErr)
	}
	// The error does not say; ask the listener what it speaks.
	speaksTLS, saslRequired, perr := probe(ctx, addr)
	switch {
	case perr != nil:
		return err
	case speaksTLS && !c.TLS.Enabled:
		return ce(ErrPlaintextToTLS, "the listener speaks TLS and the client plaintext; set tls to true (KAFKA_TLS=true) or use the broker's plaintext port")
	case !speaksTLS && c.TLS.Enabled:
		return ce(ErrTLSToPlaintext, "the listener does not speak TLS; set tls to false (KAFKA_TLS=false) or use the broker's TLS port")
	case saslRequired && !c.Auth.sasl():
		return ce(ErrSASLRequired, "the listener requires SASL authentication; set KAFKA_AUTH (plain, scram-sha-256 or scram-sha-512) with a username and password")
	case !saslRequired && c.Auth.sasl() && !speaksTLS:
		return ce(ErrMechanismNotEnabled, "the listener does not use SASL; set KAFKA_AUTH=none or use the broker's SASL port")
	}
	return err
}

// probe learns what the listener at addr speaks: TLS (a handshake gets an
// answer), and, when not TLS, whether it requires SASL (it answers
// ApiVersions but closes the connection on Metadata).
func probe(ctx context.Context, addr string) (speaksTLS, saslRequired bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := &net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "probe"}) //nolint:gosec // probe only, no data sent
	herr := tc.HandshakeContext(ctx)
	tc.Close()
	if herr == nil || strings.Contains(herr.Error(), "remote error: tls:") {
		return true, false, nil
	}
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = 3 * time.Second
	cfg.Net.ReadTimeout = 3 * time.Second
	cfg.Version = sarama.V3_6_0_0
	cfg.ApiVersionsRequest = false // we send the one ApiVersions a SASL listener allows before auth
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return false, false, err
	}
	defer b.Close()
	if _, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: 0}); err != nil {
		return false, false, fmt.Errorf("not a Kafka listener: %w", err)
	}
	_, err = b.GetMetadata(&sarama.MetadataRequest{Version: 1, Topics: []string{}})
	return false, err != nil, nil
}
