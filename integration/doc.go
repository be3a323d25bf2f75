// Package integration holds Eddy's end-to-end tests against the real
// services of the machine: PostgreSQL, MariaDB and (later) an S3-compatible
// server. `make test` prepares them with scripts/test-services.sh first; a
// test skips, saying why, only when a service is truly absent.
package integration
