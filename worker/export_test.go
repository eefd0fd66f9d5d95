package worker

// WriteTestCert is writeTestCert (httpserver_test.go), for the TLS test of
// a worker process.
var WriteTestCert = writeTestCert
