// Package connect is Eddy's runtime around the log. So far it holds what
// `eddy run` and the CLI share:
//
//   - Broker, the operations on a log (topics, produce, fetch, consumer
//     groups), with two implementations: LocalBroker over a log opened in
//     this process, and Client over the admin API of a running server.
//     Both return the log package's sentinel errors, so callers branch on
//     them the same way whichever they hold.
//   - AdminServer, the HTTP admin API: topics, records (JSON, or raw
//     RecordBatch v2 bytes for clients that decode batches themselves),
//     groups with lag, Prometheus /metrics, /healthz and /readyz.
//   - Config, eddy.yaml: every error names the file, the line and the key.
//
// Connectors, tasks, the checkpoint protocol, transforms and schedules join
// this package as they are built; it must never import a source or a sink
// by name outside the plugin catalog.
package connect
