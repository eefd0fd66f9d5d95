package kafkatest

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// LoopFault puts an entity's goka processor into a restart loop from
// outside the worker, with nothing but the Kafka admin API and a producer,
// and takes it out again. It depends on sarama and testing only: copy it
// into a worker-level test (the worker's /readyz, the dashboard).
//
// BreakLoop:
//  1. reads the partition count and the topic-level configuration of the
//     entity's loop topic (<app>.<entity>-loop), deletes the topic and
//     waits until the cluster's metadata no longer lists it. Deleting it
//     alone stops nothing: goka's consumers of a deleted topic only log
//     errors (the same holds for the commands topic);
//  2. writes one command to the entity's commands topic keyed by something
//     other than its subject (ce_subject). The processor re-routes such a
//     record through the loop topic; that write fails (the producer gives
//     up on the unknown topic after its retries, about a second), the
//     input is not committed, and goka stops the processor;
//  3. from then on the supervisor's attempts to start the entity's
//     processor again fail at once (goka checks that the loop topic exists
//     before it starts): the processor is "restarting", with backoff 1 s,
//     2 s, 4 s ... 30 s, and LastError names the missing topic.
//
// Heal creates the loop topic again with the same partition count,
// replication and topic-level configuration and waits until every partition shows in the metadata.
// The next attempt (at most 30 s later, depending on how long the fault
// lasted) starts the processor, which reads the misrouted command again
// (never committed) and re-routes it: the command is applied and
// answered.
type LoopFault struct {
	t          testing.TB
	admin      sarama.ClusterAdmin
	client     sarama.Client
	loop       string
	partitions int32
	replicas   int16
	config     map[string]*string
	// Sent is when the misrouted command was acknowledged: the processor
	// stops about a second later.
	Sent time.Time
}

// BreakLoop deletes loopTopic and writes command (a valid CloudEvents
// command in binary mode for the entity, on commandsTopic) keyed by
// something other than its subject. brokers are the cluster's (plaintext).
func BreakLoop(t testing.TB, brokers []string, loopTopic string, command *sarama.ProducerMessage) *LoopFault {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() }) // closes client too
	f := &LoopFault{t: t, admin: admin, client: client, loop: loopTopic, config: map[string]*string{}}

	meta, err := admin.DescribeTopics([]string{loopTopic})
	if err != nil || len(meta) != 1 || meta[0].Err != sarama.ErrNoError || len(meta[0].Partitions) == 0 {
		t.Fatalf("describe %s: %v %v", loopTopic, err, meta)
	}
	f.partitions = int32(len(meta[0].Partitions))
	f.replicas = int16(len(meta[0].Partitions[0].Replicas))
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: loopTopic}}, sarama.DescribeConfigsOptions{})
	if err != nil || len(results) != 1 || results[0].ErrorCode != 0 {
		t.Fatalf("configuration of %s: %v %v", loopTopic, err, results)
	}
	for _, e := range results[0].Configs {
		if e.Source == sarama.SourceTopic {
			f.config[e.Name] = &e.Value
		}
	}
	if err := admin.DeleteTopic(loopTopic); err != nil {
		t.Fatalf("delete %s: %v", loopTopic, err)
	}
	f.waitTopic(false)

	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	m := *command
	m.Key = sarama.StringEncoder("partita-fault: not the subject")
	if _, _, err := prod.SendMessage(&m); err != nil {
		t.Fatalf("write the misrouted command: %v", err)
	}
	f.Sent = time.Now()
	return f
}

// Heal creates the loop topic again, as it was.
func (f *LoopFault) Heal() {
	f.t.Helper()
	err := f.admin.CreateTopic(f.loop, &sarama.TopicDetail{NumPartitions: f.partitions, ReplicationFactor: f.replicas, ConfigEntries: f.config}, false)
	if err != nil {
		f.t.Fatalf("create %s again: %v", f.loop, err)
	}
	f.waitTopic(true)
}

// waitTopic waits until the metadata lists the loop topic with all its
// partitions (exists) or does not list it.
func (f *LoopFault) waitTopic(exists bool) {
	f.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		_ = f.client.RefreshMetadata()
		topics, err := f.client.Topics()
		if err != nil {
			f.t.Fatal(err)
		}
		found := false
		for _, t := range topics {
			found = found || t == f.loop
		}
		if found && exists {
			ps, err := f.client.Partitions(f.loop)
			found = err == nil && int32(len(ps)) == f.partitions
		}
		if found == exists {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("topic %s: exists=%v after 30s", f.loop, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
