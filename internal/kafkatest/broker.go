// Package kafkatest runs the real Apache Kafka broker that Partita's integration
// tests and benchmarks talk to: a single-node KRaft broker on loopback, fetched
// from Maven Central into a git-ignored cache, with one listener per security
// setup Partita supports.
//
// Contract: [Up] is idempotent and safe to call from many processes at once (a
// file lock serialises them); the first call fetches, formats and starts the
// broker, later calls return the running broker's [Env]. The broker outlives the
// process that started it, so one broker serves a whole `make test` run; [Down]
// stops it. Every start generates new certificates and new passwords.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// KafkaVersion is the Apache Kafka release the test broker runs.
const KafkaVersion = "4.1.1"

// User is a SASL identity known to the test broker.
type User struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Env describes a running test broker: its listeners, identities and the
// certificate files clients need. It is what [Up] returns.
type Env struct {
	PID int `json:"pid"`
	// Listener addresses (host:port, all on 127.0.0.1).
	Plaintext     string `json:"plaintext"`      // PLAINTEXT
	SASLPlaintext string `json:"sasl_plaintext"` // SASL_PLAINTEXT: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLSSL       string `json:"sasl_ssl"`       // SASL_SSL: the same three mechanisms
	SSL           string `json:"ssl"`            // SSL with client certificates required (mTLS)
	// User has a PLAIN, a SCRAM-SHA-256 and a SCRAM-SHA-512 credential.
	User User `json:"user"`
	// SCRAM256Only has a SCRAM-SHA-256 credential and nothing else.
	SCRAM256Only User `json:"scram256_only"`
	// CAFile signed the broker's and the client's certificates. OtherCAFile
	// signed neither: a client trusting only it must reject the broker.
	CAFile         string `json:"ca_file"`
	OtherCAFile    string `json:"other_ca_file"`
	ClientCertFile string `json:"client_cert_file"`
	ClientKeyFile  string `json:"client_key_file"`
	// ExpiredCertFile and ExpiredKeyFile are a client certificate signed by
	// CAFile that has expired.
	ExpiredCertFile string `json:"expired_cert_file"`
	ExpiredKeyFile  string `json:"expired_key_file"`
	LogFile         string `json:"log_file"`
}

// Paths locates the cache: jars under Home/libs-<version>, the running broker under Home/run.
type Paths struct {
	Home string // e.g. <repo>/.cache/kafka
	Pom  string // the pom.xml naming the broker's artifacts
}

// DefaultPaths finds the repository root (the directory holding go.mod) from
// the working directory upwards. PARTITA_KAFKA_HOME overrides the cache.
func DefaultPaths() (Paths, error) {
	dir, err := os.Getwd()
	if err != nil {
		return Paths{}, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Paths{}, errors.New("kafkatest: no go.mod above the working directory")
		}
		dir = parent
	}
	home := os.Getenv("PARTITA_KAFKA_HOME")
	if home == "" {
		home = filepath.Join(dir, ".cache", "kafka")
	}
	return Paths{Home: home, Pom: filepath.Join(dir, "internal", "kafkatest", "pom.xml")}, nil
}

func (p Paths) libs() string    { return filepath.Join(p.Home, "libs-"+KafkaVersion) }
func (p Paths) run() string     { return filepath.Join(p.Home, "run") }
func (p Paths) envFile() string { return filepath.Join(p.run(), "broker.json") }

// Up returns the running broker, starting it first when none runs. logf
// reports progress (fetching, formatting, starting); it may be nil.
func Up(ctx context.Context, p Paths, logf func(string, ...any)) (*Env, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	unlock, err := lock(p.Home)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if env, err := running(ctx, p); err == nil {
		return env, nil
	}
	if err := fetch(ctx, p, logf); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		env, err := start(ctx, p, logf)
		if err == nil {
			return env, nil
		}
		lastErr = err
		logf("kafkatest: start attempt %d failed: %v", attempt, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("kafkatest: broker did not start: %w", lastErr)
}

// Down stops the broker if one runs: SIGTERM for a clean shutdown, SIGKILL after 30s.
func Down(p Paths) error {
	unlock, err := lock(p.Home)
	if err != nil {
		return err
	}
	defer unlock()
	env, err := readEnv(p)
	if err != nil {
		return nil // nothing was started
	}
	stopProcess(env.PID, 30*time.Second)
	return os.Remove(p.envFile())
}

// Running returns the running broker's Env, or an error when none answers.
func Running(ctx context.Context, p Paths) (*Env, error) { return running(ctx, p) }

func running(ctx context.Context, p Paths) (*Env, error) {
	env, err := readEnv(p)
	if err != nil {
		return nil, err
	}
	if !alive(env.PID) {
		return nil, fmt.Errorf("kafkatest: broker process %d is gone", env.PID)
	}
	// A broker that is alive but slow to answer (a loaded machine: many
	// test packages at once) is asked again for half a minute before it
	// counts as stuck: Up would restart it under every other test.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(ctx, env.Plaintext)
		if err == nil {
			return env, nil
		}
		if !alive(env.PID) || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(time.Second)
	}
}

func readEnv(p Paths) (*Env, error) {
	data, err := os.ReadFile(p.envFile())
	if err != nil {
		return nil, err
	}
	var env Env
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("kafkatest: %s: %w", p.envFile(), err)
	}
	return &env, nil
}

// fetch copies the broker's jars from Maven Central into the cache, once.
func fetch(ctx context.Context, p Paths, logf func(string, ...any)) error {
	done := filepath.Join(p.libs(), ".complete")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	logf("kafkatest: fetching Apache Kafka %s from Maven Central into %s", KafkaVersion, p.libs())
	tmp := p.libs() + ".tmp"
	_ = os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "mvn", "-B", "-q", "-f", p.Pom,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kafkatest: mvn dependency:copy-dependencies: %w\n%s", err, out)
	}
	_ = os.RemoveAll(p.libs())
	if err := os.Rename(tmp, p.libs()); err != nil {
		return err
	}
	return os.WriteFile(done, []byte(KafkaVersion+"\n"), 0o644)
}

// start formats a fresh KRaft log directory and starts the broker on new ports.
func start(ctx context.Context, p Paths, logf func(string, ...any)) (*Env, error) {
	if env, err := readEnv(p); err == nil {
		stopProcess(env.PID, 10*time.Second) // a broker that stopped answering
	}
	run := p.run()
	if err := os.RemoveAll(run); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(run, 0o700); err != nil {
		return nil, err
	}
	certs, err := writeCerts(filepath.Join(run, "certs"))
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	env := &Env{
		Plaintext: addr(0), SASLPlaintext: addr(1), SASLSSL: addr(2), SSL: addr(3),
		User:            User{Name: "partita", Password: randomSecret()},
		SCRAM256Only:    User{Name: "scram256only", Password: randomSecret()},
		CAFile:          certs.CAFile,
		OtherCAFile:     certs.OtherCAFile,
		ClientCertFile:  certs.ClientCertFile,
		ClientKeyFile:   certs.ClientKeyFile,
		ExpiredCertFile: certs.ExpiredCertFile,
		ExpiredKeyFile:  certs.ExpiredKeyFile,
		LogFile:         filepath.Join(run, "kafka.log"),
	}
	props := filepath.Join(run, "server.properties")
	if err := os.WriteFile(props, []byte(serverProperties(run, env, addr(4), certs)), 0o600); err != nil {
		return nil, err
	}
	log4j := filepath.Join(run, "log4j2.properties")
	if err := os.WriteFile(log4j, []byte(log4jProperties(env.LogFile)), 0o644); err != nil {
		return nil, err
	}
	classpath := filepath.Join(p.libs(), "*")
	logf("kafkatest: formatting KRaft storage in %s", run)
	format := exec.CommandContext(ctx, "java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-Dlog4j2.configurationFile="+log4j, "-cp", classpath,
		"kafka.tools.StorageTool", "format", "-t", clusterID(), "-c", props,
		"--add-scram", fmt.Sprintf("SCRAM-SHA-256=[name=%s,password=%s]", env.User.Name, env.User.Password),
		"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", env.User.Name, env.User.Password),
		"--add-scram", fmt.Sprintf("SCRAM-SHA-256=[name=%s,password=%s]", env.SCRAM256Only.Name, env.SCRAM256Only.Password))
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("format storage: %w\n%s", err, out)
	}
	logf("kafkatest: starting Kafka %s (PLAINTEXT %s, SASL_PLAINTEXT %s, SASL_SSL %s, SSL %s)",
		KafkaVersion, env.Plaintext, env.SASLPlaintext, env.SASLSSL, env.SSL)
	if err := launch(ctx, p, env); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.envFile(), data, 0o600); err != nil {
		return nil, err
	}
	logf("kafkatest: broker ready (pid %d)", env.PID)
	return env, nil
}

// launch starts the broker of an existing run directory and waits until it
// answers; env.PID is set to the new process.
func launch(ctx context.Context, p Paths, env *Env) error {
	run := p.run()
	out, err := os.OpenFile(filepath.Join(run, "kafka.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	log4j := filepath.Join(run, "log4j2.properties")
	cmd := exec.Command("java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
		"-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+log4j, "-cp", filepath.Join(p.libs(), "*"), "kafka.Kafka", filepath.Join(run, "server.properties"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive the test process
	if err := cmd.Start(); err != nil {
		return err
	}
	env.PID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitReady(ctx, env, exited); err != nil {
		stopProcess(env.PID, 5*time.Second)
		return fmt.Errorf("%w (broker log: %s)", err, env.LogFile)
	}
	return nil
}

// Restart stops the running broker cleanly and starts it again on the same
// ports with the same data, as an operator's rolling restart would.
func Restart(ctx context.Context, p Paths) (*Env, error) {
	unlock, err := lock(p.Home)
	if err != nil {
		return nil, err
	}
	defer unlock()
	env, err := readEnv(p)
	if err != nil {
		return nil, err
	}
	stopProcess(env.PID, 30*time.Second)
	if err := launch(ctx, p, env); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return env, os.WriteFile(p.envFile(), data, 0o600)
}

func waitReady(ctx context.Context, env *Env, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("broker exited during start-up: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("broker did not answer within 2m: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if ping(ctx, env.Plaintext) == nil {
			return nil
		}
	}
}

func serverProperties(run string, env *Env, controller string, certs certSet) string {
	jaas := func(listener string) string {
		return fmt.Sprintf(`listener.name.%[1]s.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_%[2]s="%[3]s";
listener.name.%[1]s.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.%[1]s.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
`, listener, env.User.Name, env.User.Password)
	}
	return fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@%[1]s
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://%[2]s,SASL_PLAINTEXT://%[3]s,SASL_SSL://%[4]s,SSL://%[5]s,CONTROLLER://%[1]s
advertised.listeners=PLAINTEXT://%[2]s,SASL_PLAINTEXT://%[3]s,SASL_SSL://%[4]s,SSL://%[5]s
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=%[6]s/data
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
%[7]s%[8]sssl.keystore.type=PEM
ssl.keystore.location=%[9]s
ssl.truststore.type=PEM
ssl.truststore.location=%[10]s
ssl.endpoint.identification.algorithm=
listener.name.ssl.ssl.client.auth=required
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.io.buffer.size=262144
log.cleaner.threads=1
num.network.threads=2
num.io.threads=4
log.segment.bytes=33554432
`, controller, env.Plaintext, env.SASLPlaintext, env.SASLSSL, env.SSL, run,
		jaas("sasl_plaintext"), jaas("sasl_ssl"), certs.BrokerStoreFile, certs.CAFile)
}

func log4jProperties(logFile string) string {
	return fmt.Sprintf(`status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
`, logFile)
}

// lock takes an exclusive file lock under dir, so concurrent test processes
// start one broker between them.
func lock(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func stopProcess(pid int, grace time.Duration) {
	if !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		reap(pid)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
			reap(pid)
		}
	}
}

// reap collects pid if it is our child and has exited (so alive() turns false).
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomSecret() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "pw-" + strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=")
}

// clusterID is a random KRaft cluster id: 16 bytes, base64url without padding.
func clusterID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Fetch copies the broker's jars into the cache if they are not there yet.
func Fetch(ctx context.Context, p Paths, logf func(string, ...any)) error {
	unlock, err := lock(p.Home)
	if err != nil {
		return err
	}
	defer unlock()
	return fetch(ctx, p, logf)
}
