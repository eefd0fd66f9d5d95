package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/IBM/sarama"
)

// Connect opens a client to the cluster c names. A failure is returned
// through [Explain], so it names its cause. The caller closes the client.
func Connect(ctx context.Context, c Config, log *slog.Logger) (sarama.Client, error) {
	sc, err := c.Sarama(log)
	if err != nil {
		return nil, err
	}
	type result struct {
		client sarama.Client
		err    error
	}
	done := make(chan result, 1)
	go func() {
		cl, err := sarama.NewClient(c.BootstrapServers, sc)
		done <- result{cl, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, Explain(ctx, c, r.err)
		}
		if log != nil {
			log.Debug("connected to Kafka", "connection", c.Describe())
		}
		return r.client, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.client != nil {
				r.client.Close()
			}
		}()
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(c.BootstrapServers, ","), ctx.Err())
	}
}

// Report is what [Check] learned about a cluster. It holds no secret.
type Report struct {
	Connection   string   // Config.Describe()
	ClusterID    string   // empty if the broker does not say
	Brokers      []string // "id=1 127.0.0.1:9092"
	CanDescribe  bool     // the principal may list and describe topics
	DescribeNote string   // why not, when it may not
	CanCreate    bool     // the principal may create topics (validated, nothing created)
	CreateNote   string   // why not, when it may not
}

// Write prints r for a person.
func (r *Report) Write(w io.Writer) {
	yesNo := func(ok bool, note string) string {
		if ok {
			return "yes"
		}
		return "no: " + note
	}
	fmt.Fprintf(w, "Kafka connection OK\n")
	fmt.Fprintf(w, "  connection:       %s\n", r.Connection)
	fmt.Fprintf(w, "  cluster id:       %s\n", r.ClusterID)
	fmt.Fprintf(w, "  brokers:          %s\n", strings.Join(r.Brokers, ", "))
	fmt.Fprintf(w, "  describe topics:  %s\n", yesNo(r.CanDescribe, r.DescribeNote))
	fmt.Fprintf(w, "  create topics:    %s\n", yesNo(r.CanCreate, r.CreateNote))
}

// probeTopic is the name Check asks the broker to validate a creation of.
const probeTopic = "partita-check-can-create"

// Check connects with c and reports the cluster id, the brokers, and whether
// the principal can describe and create topics. Creating is asked with
// validate-only, so nothing is created. A connection failure is explained.
func Check(ctx context.Context, c Config, log *slog.Logger) (*Report, error) {
	client, err := Connect(ctx, c, log)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	r := &Report{Connection: c.Describe()}
	for _, b := range client.Brokers() {
		r.Brokers = append(r.Brokers, fmt.Sprintf("id=%d %s", b.ID(), b.Addr()))
	}
	sort.Strings(r.Brokers)
	ctrl, err := client.Controller()
	if err != nil {
		return nil, Explain(ctx, c, err)
	}
	md, err := ctrl.GetMetadata(&sarama.MetadataRequest{Version: 7, Topics: []string{}})
	if err != nil {
		return nil, Explain(ctx, c, err)
	}
	if md.ClusterID != nil {
		r.ClusterID = *md.ClusterID
	}

	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, err
	}
	// Closing admin would close client too; client.Close above does it.
	if _, err := admin.ListTopics(); err != nil {
		r.DescribeNote = err.Error()
	} else {
		r.CanDescribe = true
	}
	err = admin.CreateTopic(probeTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, true)
	switch {
	case err == nil, errors.Is(err, sarama.ErrTopicAlreadyExists), errors.Is(err, sarama.ErrInvalidReplicationFactor):
		r.CanCreate = true // allowed; the details of the probe topic do not matter
	default:
		r.CreateNote = err.Error()
	}
	return r, nil
}
