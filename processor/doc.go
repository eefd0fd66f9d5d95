// Package processor is Partita's Kafka runtime: it turns entity definitions
// (package entities) into goka processors and keeps the delivery contract.
//
// Contract of a running [Runtime]:
//   - Topics: it creates the application's topics when allowed (commands,
//     table (compacted), loop, events, replies, dead letters, declared
//     publish targets) and checks that co-partitioned topics have equal
//     partition counts, failing start-up with [ErrPartitionMismatch] naming
//     each topic and its count, or [ErrMissingTopics] when it may not create.
//   - Partitioning: one partitioner, Kafka's murmur2, everywhere. A record
//     whose key is not its ce-subject, or whose partition is not the one its
//     subject hashes to, is re-routed through the entity's loop topic before
//     it touches state.
//   - Effectively-once on state: a redelivered command (same ce-source and
//     ce-id within the entity's dedup window) is answered from the record of
//     what it produced, which is written again unchanged.
//   - Dead letters: a record that is not a valid CloudEvent, lacks a subject,
//     has an unknown type, a payload that does not fit, or whose handler
//     panics, times out or keeps failing goes to <app>.dlq with its original
//     key, value and headers plus partita_dlq_* headers naming the reason and
//     origin; the partition moves on. Records with a nil value are
//     dead-lettered too (goka would drop them).
//   - New groups start at the oldest record of their inputs, except
//     subscriptions declared to start at the latest.
//   - Record sizes: every record it writes fits its topic's limit (the
//     producer's, or the topic's max.message.bytes read from the cluster at
//     start-up when lower); an input whose output would not fit is a dead
//     letter instead, and a dead letter that would not fit the dead-letter
//     topic has its value cut. So no input can make a write fail.
//   - Every processor, view replica and state replica is supervised: when
//     one stops with an error (a broker restart, a failed rebalance, a
//     write that failed) it starts again with backoff (1 s doubling to
//     30 s); Run returns when its context ends. [Runtime.Health] reports
//     each part's state (starting, running, restarting, stopped), restarts
//     and last error; [Runtime.Healthy] is nil only while every part runs.
//   - Timers: each entity processor fires the pending timers of the
//     partitions it owns, loaded from the restored table, by writing the
//     timer's command to the entity's loop topic when due (again after 30 s
//     while it is still pending); the command consumes the timer, so it is
//     applied once. Asks are answered on the asking entity's loop topic.
//     [Runtime.TimerStats] counts pending and overdue timers.
//   - [Client] sends a command and awaits its reply or dead letter: the
//     gateway's and any Go program's way to talk to entities.
//
// Replies to commands go to <app>.replies keyed by the command's ce-id, as
// CloudEvents of type partita.reply or partita.error (code in the
// partitaerror extension) carrying the subject's sequence number.
package processor
