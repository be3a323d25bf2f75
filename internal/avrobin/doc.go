// Package avrobin is Eddy's one home for Avro in its value model, shared by
// the runtime and the sinks:
//
//   - Reader, a bounds-checked reader of Avro binary, and Skipper, compiled
//     from a schema, to step over one value (sinks that read records
//     straight from the log's bytes find the fields they need and pass over
//     the rest);
//   - Codec, compiled once per schema, to encode and decode Avro binary
//     to and from the value model (records as map[string]any, a nullable
//     field as nil or its value, logical types as Go types);
//   - AppendJSON, the model rendered as JSON (files, dead letters, the
//     JSON converter);
//   - Deref and NonNull, the schema walks every one of them needs.
//
// The database sinks' text and COPY binary renderers (sinks/sql) read with
// the same Reader; they render SQL types, so they stay with the sinks.
//
// Nothing here panics on malformed input: every length and count is
// checked against what is left, and nesting is bounded.
package avrobin
