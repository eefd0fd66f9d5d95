// Package processor is Partita's runtime: it turns entity and view
// definitions into goka graphs and owns everything Kafka-specific (topic
// management, routing, dedup, dead letters, metrics). Its subpackage broker
// holds the connection settings shared with the worker.
//
// Status: the runtime arrives with issue 3; see package broker for what exists.
package processor
