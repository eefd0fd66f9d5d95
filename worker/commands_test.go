package worker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/worker"
)

func runMain(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out strings.Builder
	code := worker.Main(context.Background(), shop.App(), args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out, &out)
	return code, out.String()
}

func TestConfigCommandRedactsSecretsAndShowsPrecedence(t *testing.T) {
	env := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": "b-1:9096", "KAFKA_AUTH": "scram-sha-512", "KAFKA_USERNAME": "orders",
		"KAFKA_PASSWORD": "hunter2-secret", "KAFKA_TLS": "true", "PARTITA_APP": "from-env", "PARTITA_HTTP_ADDR": ":9999"}
	code, out := runMain(t, env, "config", "--app", "from-flag")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if strings.Contains(out, "hunter2-secret") || !strings.Contains(out, "[redacted]") {
		t.Errorf("the password is not redacted:\n%s", out)
	}
	for _, s := range []string{"app: from-flag", "http_addr: :9999", "auth: scram-sha-512", "- b-1:9096"} {
		if !strings.Contains(out, s) {
			t.Errorf("effective config lacks %q:\n%s", s, out)
		}
	}
}

func TestTopicsPlan(t *testing.T) {
	code, out := runMain(t, nil, "topics", "plan", "--app", "shop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, s := range []string{
		"shop.cart.commands partitions=8 replication=3 cleanup.policy=delete",
		"shop.cart-table partitions=8 replication=3 cleanup.policy=compact",
		"shop.cart.events partitions=8 replication=3 cleanup.policy=delete,retention.ms=-1",
		"shop.customer-loop", "shop.carts-table", "shop.customers-by-email-table", "shop.replies", "shop.dlq",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("plan lacks %q:\n%s", s, out)
		}
	}
}

func TestEveryConfigProblemAtOnce(t *testing.T) {
	code, out := runMain(t, map[string]string{"KAFKA_AUTH": "kerberos", "KAFKA_TLS": "maybe"}, "run", "--brokers", "nohostport")
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, out)
	}
	for _, s := range []string{`KAFKA_TLS="maybe"`, `"nohostport" is not host:port`, `auth "kerberos" is unknown`} {
		if !strings.Contains(out, s) {
			t.Errorf("not reported: %q\n%s", s, out)
		}
	}
}

func TestAnApplicationNeedsAName(t *testing.T) {
	var out strings.Builder
	app := shop.App()
	app.Name = ""
	code := worker.Main(context.Background(), app, []string{"topics", "plan"}, func(string) (string, bool) { return "", false }, &out, &out)
	if code != 2 || !strings.Contains(out.String(), "no application name") {
		t.Errorf("exit %d: %s; want 2 and a message asking for the name", code, out.String())
	}
	code = worker.Main(context.Background(), app, []string{"topics", "plan", "--app", "orders"}, func(string) (string, bool) { return "", false }, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "orders.cart.commands") {
		t.Errorf("with --app: exit %d: %s", code, out.String())
	}
}
