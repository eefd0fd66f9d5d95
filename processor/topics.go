package processor

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/internal/core"
)

// ErrPartitionMismatch is wrapped by the start-up error when co-partitioned
// topics have different partition counts.
var ErrPartitionMismatch = core.ErrPartitionMismatch

// ErrMissingTopics is wrapped by the start-up error when topics do not exist
// and topic creation is off.
var ErrMissingTopics = errors.New("topics are missing")

// TopicSpec is a topic the application needs, with the configuration
// Partita creates it with.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	Config      map[string]string
	// External topics (subscriptions) are never created by Partita.
	External bool
}

// String prints the spec as one line: name, partitions, replication, config.
func (s TopicSpec) String() string {
	keys := make([]string, 0, len(s.Config))
	for k := range s.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cfg []string
	for _, k := range keys {
		cfg = append(cfg, k+"="+s.Config[k])
	}
	ext := ""
	if s.External {
		ext = " (external: must exist)"
	}
	return fmt.Sprintf("%s partitions=%d replication=%d %s%s", s.Name, s.Partitions, s.Replication, strings.Join(cfg, ","), ext)
}

// ensureTopics creates the missing topics (when allowed) and returns the
// partition count of every spec'd topic.
func ensureTopics(client sarama.Client, specs []TopicSpec, create bool) (map[string]int32, error) {
	if err := client.RefreshMetadata(); err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", err)
	}
	existing, err := client.Topics()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range existing {
		have[t] = true
	}
	var missing []string
	var admin sarama.ClusterAdmin
	for _, s := range specs {
		if have[s.Name] {
			continue
		}
		if s.External || !create {
			missing = append(missing, s.String())
			continue
		}
		if admin == nil {
			if admin, err = sarama.NewClusterAdminFromClient(client); err != nil {
				return nil, err
			}
		}
		cfg := map[string]*string{}
		for k, v := range s.Config {
			cfg[k] = &v
		}
		err := admin.CreateTopic(s.Name, &sarama.TopicDetail{NumPartitions: s.Partitions, ReplicationFactor: s.Replication, ConfigEntries: cfg}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s: %w", s.Name, err)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w (create them, or allow Partita to): \n  %s", ErrMissingTopics, strings.Join(missing, "\n  "))
	}
	// Metadata of fresh topics can take a moment to show every partition.
	counts := map[string]int32{}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range specs {
		for {
			_ = client.RefreshMetadata(s.Name)
			ps, err := client.Partitions(s.Name)
			if err == nil && len(ps) > 0 {
				counts[s.Name] = int32(len(ps))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("topic %s: no partitions visible after 30s: %v", s.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return counts, nil
}
