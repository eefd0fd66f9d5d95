package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka broker (kfake) for `make run` and fast
// tests. It speaks the Kafka wire protocol on loopback; it is not a
// replacement for a real broker where real-Kafka behaviour matters.
type Embedded struct {
	cluster *kfake.Cluster
	Addr    string // host:port of its listener
}

// StartEmbedded starts an in-process broker on loopback at port (0 picks a
// free one). With dataDir set, its data survives a restart.
func StartEmbedded(port int, dataDir string) (*Embedded, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("partita-embedded")}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	return &Embedded{cluster: c, Addr: c.ListenAddrs()[0]}, nil
}

// Config returns a connection to the embedded broker, keeping base's other settings.
func (e *Embedded) Config(base Config) Config {
	base.BootstrapServers = []string{e.Addr}
	return base
}

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
