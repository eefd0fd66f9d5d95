package kafkatest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certSet is the PKI the test broker uses, written as PEM files (keys PKCS#8).
type certSet struct {
	CAFile          string // the CA that signed the broker and client certificates
	BrokerStoreFile string // broker key + chain, Kafka's PEM keystore format
	ClientCertFile  string // client certificate signed by the CA (CN=partita-client)
	ClientKeyFile   string
	OtherCAFile     string // a CA that signed nothing the broker uses: "not trusted"
	ExpiredCertFile string // a client certificate signed by the CA that expired yesterday
	ExpiredKeyFile  string
}

type keyPair struct {
	cert *x509.Certificate
	der  []byte
	key  *rsa.PrivateKey
}

// writeCerts generates a fresh CA, a broker certificate for localhost and
// 127.0.0.1, a client certificate, and an unrelated CA, into dir.
func writeCerts(dir string) (certSet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return certSet{}, err
	}
	ca, err := newCert(nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Partita test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	})
	if err != nil {
		return certSet{}, err
	}
	other, err := newCert(nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Some other CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	})
	if err != nil {
		return certSet{}, err
	}
	broker, err := newCert(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return certSet{}, err
	}
	client, err := newCert(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "partita-client"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return certSet{}, err
	}
	expired, err := newCert(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "partita-expired-client"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotAfter:    time.Now().Add(-24 * time.Hour),
	})
	if err != nil {
		return certSet{}, err
	}
	cs := certSet{
		CAFile:          filepath.Join(dir, "ca.pem"),
		BrokerStoreFile: filepath.Join(dir, "broker-keystore.pem"),
		ClientCertFile:  filepath.Join(dir, "client.pem"),
		ClientKeyFile:   filepath.Join(dir, "client-key.pem"),
		OtherCAFile:     filepath.Join(dir, "other-ca.pem"),
		ExpiredCertFile: filepath.Join(dir, "expired-client.pem"),
		ExpiredKeyFile:  filepath.Join(dir, "expired-client-key.pem"),
	}
	expiredKey, err := keyPEM(expired.key)
	if err != nil {
		return certSet{}, err
	}
	brokerKey, err := keyPEM(broker.key)
	if err != nil {
		return certSet{}, err
	}
	clientKey, err := keyPEM(client.key)
	if err != nil {
		return certSet{}, err
	}
	files := map[string][]byte{
		cs.CAFile:          certPEM(ca),
		cs.OtherCAFile:     certPEM(other),
		cs.BrokerStoreFile: append(brokerKey, append(certPEM(broker), certPEM(ca)...)...),
		cs.ClientCertFile:  certPEM(client),
		cs.ClientKeyFile:   clientKey,
		cs.ExpiredCertFile: certPEM(expired),
		cs.ExpiredKeyFile:  expiredKey,
	}
	for name, data := range files {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return certSet{}, err
		}
	}
	return cs, nil
}

// newCert creates a certificate from tmpl, signed by parent (self-signed when nil).
func newCert(parent *keyPair, tmpl *x509.Certificate) (*keyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(30 * 24 * time.Hour)
	} else {
		tmpl.NotBefore = tmpl.NotAfter.Add(-30 * 24 * time.Hour)
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, der: der, key: key}, nil
}

func certPEM(kp *keyPair) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.der})
}

func keyPEM(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
