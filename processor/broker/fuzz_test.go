package broker_test

import (
	"strings"
	"testing"

	"github.com/partita-dev/partita/processor/broker"
)

// FuzzParseYAML: the configuration parser and Validate never panic, and no
// error or description ever shows the password.
func FuzzParseYAML(f *testing.F) {
	f.Add("bootstrap_servers: [b:9096]\nauth: scram-sha-512\nusername: u\npassword: ${env.PW}\ntls:\n  ca_file: /x\n")
	f.Add("tls: true\nauth: plain\n")
	f.Add("password: $${env.PW}\n")
	f.Add("bootstrap_servers: b\nauth: [1, 2]\n")
	f.Add("{")
	f.Fuzz(func(t *testing.T, doc string) {
		const secret = "S3cr3t-pw-value"
		c, err := broker.ParseYAML([]byte(doc), func(k string) (string, bool) { return "from-env", k == "PW" })
		if err != nil {
			return // a parse error may quote the document, which the user wrote
		}
		c.Password = secret // whatever else the document says, the password must not show
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), secret) {
			t.Fatalf("Validate shows the password: %v", err)
		}
		if strings.Contains(c.Describe(), secret) {
			t.Fatalf("Describe shows the password: %s", c.Describe())
		}
	})
}
