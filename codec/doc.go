// Package codec holds payload codecs (JSON, protobuf, string, bytes) and the
// CloudEvents <-> Kafka record mapping. It has no goka or sarama types in its
// API.
//
// Status: the codecs arrive with the entity runtime (issue 3).
package codec
