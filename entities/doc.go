// Package entities is the entity API: key-value and event-sourced entities
// written as typed Go handlers, their effects and command context. It has no
// Kafka types in its API; package processor runs entities on Kafka.
//
// Status: the API arrives with the entity runtime (issue 3).
package entities
