// Package admin is the HTTP admin API of `eddy run` and its client:
// topics, records, groups with lag, Kafka Connect's connector paths over
// the worker (through the Connectors interface, which *connect.Worker
// meets), jobs, the plugin catalog, Prometheus /metrics and health, behind
// the listener's door policy (internal/access).
//
// Broker is the operations on a log, in this process (LocalBroker) or over
// the API (Client); the CLI works through it either way.
package admin
