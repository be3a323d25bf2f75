package mysql

import (
	"bytes"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
)

// Positions round-trip and order as the runtime needs: snapshot before
// stream, then by binlog file, transaction and row, a marker (row 0)
// before the first row of the transaction starting where it stands.
func TestPositionsOrderAndRoundTrip(t *testing.T) {
	at := coords{file: "mysql-bin.000009", pos: 1234, gtid: "0-1-55"}
	ordered := [][]byte{
		snapshotPos(0, 7, 0, 0, at),
		snapshotPos(0, 7, 0, 1, at),
		snapshotPos(0, 7, 1, 0, at),
		snapshotEnd(snapshotPos(0, 7, 0, 0, at)),
		snapshotPos(0, 8, 0, 1, at), // a retaken snapshot's epoch
		streamPos(0, 9, 0, coords{file: "mysql-bin.000009", pos: 4}),
		streamPos(0, 9, 1, coords{file: "mysql-bin.000009", pos: 4}),
		streamPos(0, 9, 2, coords{file: "mysql-bin.000009", pos: 4}),
		streamPos(0, 9, 0, at), // a marker where the next transaction starts
		streamPos(0, 9, 1, at),
		streamPos(0, 10, 1, coords{file: "mysql-bin.000010", pos: 4, gtid: "0-1-56"}),
		snapshotPos(1, 9, 0, 1, at), // a snapshot taken again after a purged binlog
		streamPos(1, 3, 1, at),      // the stream after it, from an older file than before
	}
	for i := 1; i < len(ordered); i++ {
		if bytes.Compare(ordered[i-1], ordered[i]) >= 0 {
			t.Errorf("position %d (%x) does not sort after %d (%x)", i, ordered[i], i-1, ordered[i-1])
		}
	}
	p, err := parsePosition(streamPos(4, 9, 3, at))
	if err != nil || p.kind != posStream || p.at != at || p.gen != 4 {
		t.Errorf("parse: %+v, %v", p, err)
	}
	p, err = parsePosition(ordered[3])
	if err != nil || !p.done || p.at != at {
		t.Errorf("the snapshot's end: %+v, %v", p, err)
	}
	for _, bad := range [][]byte{nil, {0, 0, 0, 0, 0x02}, streamPos(0, 9, 1, at)[:29], append(streamPos(0, 9, 1, at), 0)} {
		if _, err := parsePosition(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
	if n, err := fileNumber("binlog.000123"); err != nil || n != 123 {
		t.Errorf("fileNumber: %d, %v", n, err)
	}
	if _, err := fileNumber("nonumber"); err == nil {
		t.Error("a binlog name without a number parsed")
	}
}

// GTID sets of both flavors: parsed, a transaction added, containment
// (the check that the server still has what a position needs).
func TestGTIDSets(t *testing.T) {
	my, err := parseGTIDs("mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5, 4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3:7")
	if err != nil {
		t.Fatal(err)
	}
	if err := my.add("3e11fa47-71ca-11e1-9e33-c80aa9429562:6"); err != nil {
		t.Fatal(err)
	}
	if got, want := my.String(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3:7"; got != want {
		t.Errorf("mysql set %s, want %s", got, want)
	}
	older, _ := parseGTIDs("mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4")
	if !my.contains(older) || older.contains(my) {
		t.Error("mysql containment")
	}
	maria, err := parseGTIDs("mariadb", "0-1-10,1-2-5")
	if err != nil {
		t.Fatal(err)
	}
	if err := maria.add("0-1-11"); err != nil {
		t.Fatal(err)
	}
	if got, want := maria.String(), "0-1-11,1-2-5"; got != want {
		t.Errorf("mariadb list %s, want %s", got, want)
	}
	behind, _ := parseGTIDs("mariadb", "0-1-9")
	if !maria.contains(behind) || behind.contains(maria) {
		t.Error("mariadb containment")
	}
	empty, err := parseGTIDs("mariadb", "")
	if err != nil || empty.String() != "" || !maria.contains(empty) {
		t.Errorf("empty: %q, %v", empty.String(), err)
	}
	if err := empty.add("0-1-1"); err != nil || empty.String() != "0-1-1" {
		t.Errorf("add to empty: %q, %v", empty.String(), err)
	}
	if _, err := parseGTIDs("mysql", "not a gtid"); err == nil {
		t.Error("a bad set parsed")
	}
}

func TestParseLabels(t *testing.T) {
	got, err := parseLabels(`enum('a','b''c','d\\e',',')`)
	if err != nil || len(got) != 4 || got[1] != "b'c" || got[2] != `d\e` || got[3] != "," {
		t.Errorf("labels %q, %v", got, err)
	}
}

// The stream's ordered source blocks follow the source schema's fields.
func TestSourceNamesFollowTheSchema(t *testing.T) {
	sc, err := avro.Parse(sourceSchema)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range sc.(*avro.RecordSchema).Fields() {
		names = append(names, f.Name())
	}
	if !slices.Equal(names, sourceNames) || sourceNames[sourceRow] != "row" {
		t.Errorf("sourceNames %q, the schema's fields %q", sourceNames, names)
	}
}
