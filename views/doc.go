// Package views is the view API and its LevelDB row store: update handlers,
// secondary indexes, queries, paging and streaming updates. It has no Kafka
// types in its API; package processor runs views on Kafka.
//
// Status: the API arrives with the view runtime (issue 4).
package views
