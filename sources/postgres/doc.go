// Package postgres is the postgres-source plugin: change capture from
// PostgreSQL's logical replication (pgoutput) over a replication slot,
// after an optional initial snapshot consistent with the slot.
//
// Positions order every record the source emits, bytewise:
//
//	snapshot:  0x00 | epoch (8) | table index (4) | row (8)
//	streaming: 0x01 | commit LSN (8) | sequence in the transaction (8)
//
// so snapshot reads sort before the changes that follow them, and a
// restarted snapshot (a new slot, a new epoch) sorts after the one it
// replaces. The slot is acknowledged (its confirmed_flush_lsn moved) only
// when the runtime commits a position at or past a transaction's last
// record, that is, once the whole transaction is durable in the log; a
// large transaction is handed to the runtime in batches as it arrives and
// is never held in memory whole.
//
// The publication is kept to exactly the captured tables (FOR TABLE ONLY,
// publish_via_partition_root), so capture never makes the application's
// own writes fail: an inheritance child is not published, and a partition
// without a replica identity is refused before anything is created. Each
// field carries its column's source type (connect.PropPGType and
// Debezium's properties), so a sink can recreate the column exactly.
//
// Values are read in PostgreSQL's text format, in the snapshot (columns
// cast to text) and in the stream alike, and decoded by one function per
// type, so a row reads the same whichever way it came; every session pins
// the settings that shape that text (pinSession). An update that leaves
// an out-of-line value unchanged does not carry it: the event names such
// fields in the header connect.HeaderUnavailable.
package postgres
