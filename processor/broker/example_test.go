package broker_test

import (
	"errors"
	"fmt"

	"github.com/partita-dev/partita/processor/broker"
)

func ExampleFromEnv() {
	env := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": "pkc-123.eu-west-1.aws.confluent.cloud:9092",
		"KAFKA_AUTH":              "plain",
		"KAFKA_USERNAME":          "APIKEY",
		"KAFKA_PASSWORD":          "api-secret",
		"KAFKA_TLS":               "true",
	}
	cfg, err := broker.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		err = cfg.Validate()
	}
	fmt.Println(cfg.Describe(), err)
	fmt.Printf("password: %v\n", cfg.Password)
	// Output:
	// brokers pkc-123.eu-west-1.aws.confluent.cloud:9092, auth plain as "APIKEY", TLS with the system CAs <nil>
	// password: [redacted]
}

func ExampleParseYAML() {
	doc := []byte(`
bootstrap_servers: [b-1.msk.example:9096, b-2.msk.example:9096]
auth: scram-sha-512
username: orders
password: ${env.MSK_PASSWORD}
tls: true
`)
	cfg, err := broker.ParseYAML(doc, func(name string) (string, bool) {
		return "from-the-environment", name == "MSK_PASSWORD"
	})
	fmt.Println(cfg.Describe(), err)
	// Output:
	// brokers b-1.msk.example:9096,b-2.msk.example:9096, auth scram-sha-512 as "orders", TLS with the system CAs <nil>
}

func ExampleConfig_Validate() {
	cfg := broker.Config{BootstrapServers: []string{"kafka.aiven.example:12345"}, Auth: broker.AuthMTLS}
	err := cfg.Validate()
	fmt.Println(errors.Is(err, broker.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// true
	// invalid Kafka configuration:
	//   - auth mtls needs a client certificate (tls.cert_file, KAFKA_CERT_FILE)
	//   - auth mtls needs the client certificate's key (tls.key_file, KAFKA_KEY_FILE)
}
