// Package avrobin reads Avro binary without decoding it into values: a
// bounds-checked Reader, and skippers compiled from a schema that step
// over one value of it. The runtime's codec (package connect) decodes
// with the Reader; sinks that read records straight from the log's bytes
// use the skippers to find the fields they need and pass over the rest.
//
// Nothing here panics on malformed input: every length and count is
// checked against what is left, and nesting is bounded.
package avrobin
