package broker

import "errors"

// Sentinel errors. A connection failure returned by [Explain], [Check] or a
// client built by [Config.Sarama] matches one of them with errors.Is.
var (
	// ErrInvalidConfig: the configuration has problems; the error lists each.
	ErrInvalidConfig = errors.New("invalid Kafka configuration")
	// ErrNoBroker: nothing answered at the address (refused, unknown host, timeout).
	ErrNoBroker = errors.New("no Kafka broker reachable")
	// ErrAuthFailed: the broker rejected the credentials: wrong password,
	// unknown user, or no credential for the SASL mechanism used.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrMechanismNotEnabled: the listener does not offer the SASL mechanism.
	ErrMechanismNotEnabled = errors.New("SASL mechanism not enabled on this listener")
	// ErrUntrustedServer: the broker's certificate is not signed by a trusted CA.
	ErrUntrustedServer = errors.New("broker certificate not trusted")
	// ErrServerNameMismatch: the broker's certificate is for another host name.
	ErrServerNameMismatch = errors.New("broker certificate does not match the host name")
	// ErrCertificateExpired: a certificate in the exchange is expired or not yet valid.
	ErrCertificateExpired = errors.New("certificate expired or not yet valid")
	// ErrClientCertRequired: the listener requires a client certificate and none was sent.
	ErrClientCertRequired = errors.New("client certificate required")
	// ErrClientCertRejected: the listener did not accept the client certificate sent.
	ErrClientCertRejected = errors.New("client certificate rejected")
	// ErrTLSToPlaintext: TLS was spoken to a listener that does not speak TLS.
	ErrTLSToPlaintext = errors.New("TLS spoken to a plaintext listener")
	// ErrPlaintextToTLS: plaintext was spoken to a TLS listener.
	ErrPlaintextToTLS = errors.New("plaintext spoken to a TLS listener")
	// ErrSASLRequired: the listener expects SASL authentication and none was configured.
	ErrSASLRequired = errors.New("listener requires SASL authentication")
)
