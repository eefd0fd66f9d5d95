// Package partitatest (directory testing/) is the in-memory harness: it runs
// entity and view definitions with no broker and injects what at-least-once
// delivery does. It is named partitatest so that it does not clash with the
// standard library's testing package at the call site.
//
// Status: the harness arrives with issue 5.
package partitatest
