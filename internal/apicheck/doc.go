// Package apicheck holds the test that keeps Partita's public API free of
// internal types: no exported identifier of a public package may name a
// type of an internal/ package in its signature, so that go doc shows only
// types users can name.
package apicheck
