package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"testing"

	elog "github.com/eddy-cdc/eddy/log"
)

func openLog(t testing.TB, dir string) *elog.Log {
	t.Helper()
	l, err := elog.Open(dir, elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), elog.WithCleanerInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openRegistry(t *testing.T, l *elog.Log) *Registry {
	t.Helper()
	r, err := Open(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	userV1 = `{"type":"record","name":"user","fields":[{"name":"id","type":"long"}]}`
	userV2 = `{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}]}`
	userV3 = `{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null},{"name":"age","type":"int"}]}`
)

func TestRegisterDedupeAndLookup(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir())
	defer l.Close()
	r := openRegistry(t, l)
	id1, v1, err := r.Register(ctx, "users-value", userV1, nil)
	if err != nil || id1 != 1 || v1 != 1 {
		t.Fatalf("first registration: id %d version %d %v", id1, v1, err)
	}
	// The same schema, written differently, is the same registration.
	again := `{ "fields": [ {"type":"long", "name":"id"} ], "name":"user", "type":"record" }`
	if id, v, err := r.Register(ctx, "users-value", again, nil); err != nil || id != id1 || v != 1 {
		t.Fatalf("re-registration: id %d version %d %v", id, v, err)
	}
	// The same schema under another subject shares the global id.
	if id, v, err := r.Register(ctx, "other-value", userV1, nil); err != nil || id != id1 || v != 1 {
		t.Fatalf("other subject: id %d version %d %v", id, v, err)
	}
	id2, v2, err := r.Register(ctx, "users-value", userV2, nil)
	if err != nil || id2 != 2 || v2 != 2 {
		t.Fatalf("second version: id %d version %d %v", id2, v2, err)
	}
	v, err := r.Lookup("users-value", userV1, nil, false)
	if err != nil || v.Version != 1 || v.Schema.ID != 1 {
		t.Fatalf("lookup: %+v %v", v, err)
	}
	if _, err := r.Lookup("users-value", userV3, nil, false); !errors.Is(err, ErrSchemaNotFound) {
		t.Fatalf("lookup of an unregistered schema: %v", err)
	}
	if _, err := r.Lookup("nobody", userV1, nil, false); !errors.Is(err, ErrSubjectNotFound) {
		t.Fatalf("lookup in an unknown subject: %v", err)
	}
	latest, err := r.Get("users-value", Latest, false)
	if err != nil || latest.Version != 2 {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	if got := r.Subjects(false); !reflect.DeepEqual(got, []string{"other-value", "users-value"}) {
		t.Fatalf("subjects: %v", got)
	}
	if got := r.VersionsOfID(1, false); len(got) != 2 {
		t.Fatalf("versions of id 1: %+v", got)
	}
	for _, bad := range []string{`{`, `{"type":"record","name":"x","fields":[{"name":"a","type":"nope"}]}`, `"nosuchtype"`} {
		if _, _, err := r.Register(ctx, "users-value", bad, nil); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("invalid schema %s: %v", bad, err)
		}
	}
	if _, err := r.Get("users-value", 0, false); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("version 0: %v", err)
	}
}

func TestCompatibilityIsEnforced(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir())
	defer l.Close()
	r := openRegistry(t, l)
	mustRegister(t, r, "s", userV1)
	mustRegister(t, r, "s", userV2)
	// A required field without a default cannot read old data: BACKWARD refuses.
	_, _, err := r.Register(ctx, "s", userV3, nil)
	var ie *IncompatibleError
	if !errors.Is(err, ErrIncompatible) || !errors.As(err, &ie) || len(ie.Messages) == 0 {
		t.Fatalf("incompatible registration: %v", err)
	}
	if msgs, err := r.Check("s", Latest, userV3, nil); err != nil || len(msgs) == 0 {
		t.Fatalf("check: %v %v", msgs, err)
	}
	// The subject's own level wins over the global one.
	if err := r.SetLevel(ctx, "s", None); err != nil {
		t.Fatal(err)
	}
	if r.Level("s") != None || r.Level("") != Backward {
		t.Fatalf("levels: subject %s, global %s", r.Level("s"), r.Level(""))
	}
	if _, v, err := r.Register(ctx, "s", userV3, nil); err != nil || v != 3 {
		t.Fatalf("registration under NONE: %d %v", v, err)
	}
	if err := r.DeleteLevel(ctx, "s"); err != nil || r.Level("s") != Backward {
		t.Fatalf("delete subject level: %v, now %s", err, r.Level("s"))
	}
	if err := r.SetLevel(ctx, "", Level("SOMETIMES")); !errors.Is(err, ErrInvalidCompatibility) {
		t.Fatalf("bad level: %v", err)
	}
}

func mustRegister(t *testing.T, r *Registry, subj, text string) (int, int) {
	t.Helper()
	id, v, err := r.Register(context.Background(), subj, text, nil)
	if err != nil {
		t.Fatalf("register %s: %v", subj, err)
	}
	return id, v
}

func TestDeletesAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir)
	r := openRegistry(t, l)
	mustRegister(t, r, "a", userV1)
	mustRegister(t, r, "a", userV2)
	idB, _ := mustRegister(t, r, "b", `"string"`)
	// Permanent delete needs a soft delete first.
	if _, err := r.DeleteVersion(ctx, "a", 2, true); !errors.Is(err, ErrNotSoftDeleted) {
		t.Fatalf("hard delete of a live version: %v", err)
	}
	if v, err := r.DeleteVersion(ctx, "a", 2, false); err != nil || v != 2 {
		t.Fatalf("soft delete: %d %v", v, err)
	}
	if _, err := r.Get("a", 2, false); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("soft-deleted version visible: %v", err)
	}
	if v, err := r.Get("a", 2, true); err != nil || !v.Deleted {
		t.Fatalf("soft-deleted version with deleted=true: %+v %v", v, err)
	}
	// Versions are not reused after a soft delete.
	if _, v := mustRegister(t, r, "a", `{"type":"record","name":"user","fields":[{"name":"id","type":"long"},{"name":"x","type":"int","default":0}]}`); v != 3 {
		t.Fatalf("version after a soft delete: %d", v)
	}
	if _, err := r.DeleteSubject(ctx, "b", true); !errors.Is(err, ErrNotSoftDeleted) {
		t.Fatalf("hard delete of a live subject: %v", err)
	}
	if vs, err := r.DeleteSubject(ctx, "b", false); err != nil || !reflect.DeepEqual(vs, []int{1}) {
		t.Fatalf("soft delete subject: %v %v", vs, err)
	}
	if _, err := r.DeleteSubject(ctx, "b", false); !errors.Is(err, ErrSubjectSoftDeleted) {
		t.Fatalf("second soft delete: %v", err)
	}
	if _, err := r.DeleteSubject(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SchemaByID(idB); !errors.Is(err, ErrSchemaNotFound) {
		t.Fatalf("schema only a hard-deleted subject had: %v", err)
	}
	before := snapshot(r)
	// Compact _schemas and restart: the same state comes back, and ids are
	// not reused even though the record of id 3 is gone.
	tp, _ := l.Topic(SchemasTopic)
	p, _ := tp.Partition(0)
	p.Compact()
	l.Close()
	l = openLog(t, dir)
	defer l.Close()
	r = openRegistry(t, l)
	if after := snapshot(r); !reflect.DeepEqual(before, after) {
		t.Fatalf("state after restart:\n%v\nwant\n%v", after, before)
	}
	id, _ := mustRegister(t, r, "c", `"bytes"`)
	if id <= idB {
		t.Fatalf("new schema got id %d, not above every earlier id (%d)", id, idB)
	}
}

// snapshot renders the registry's visible state for comparison.
func snapshot(r *Registry) map[string][]string {
	out := map[string][]string{}
	for _, s := range r.Subjects(true) {
		vs, _ := r.Versions(s, true)
		for _, n := range vs {
			v, _ := r.Get(s, n, true)
			out[s] = append(out[s], fmtVersion(v))
		}
	}
	out["_levels"] = []string{string(r.Level(""))}
	return out
}

func fmtVersion(v *Version) string {
	d := ""
	if v.Deleted {
		d = " deleted"
	}
	return v.Subject + "/" + strconv.Itoa(v.Version) + " id " + strconv.Itoa(v.Schema.ID) + d
}

func TestReferences(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir())
	defer l.Close()
	r := openRegistry(t, l)
	addr := `{"type":"record","name":"address","namespace":"shop","fields":[{"name":"city","type":"string"}]}`
	mustRegister(t, r, "address", addr)
	order := `{"type":"record","name":"order","namespace":"shop","fields":[{"name":"ship_to","type":"shop.address"}]}`
	if _, _, err := r.Register(ctx, "orders-value", order, nil); !errors.Is(err, ErrInvalidSchema) {
		t.Fatalf("unresolved name without references: %v", err)
	}
	refs := []Reference{{Name: "shop.address", Subject: "address", Version: 1}}
	id, _, err := r.Register(ctx, "orders-value", order, refs)
	if err != nil {
		t.Fatalf("with references: %v", err)
	}
	s, err := r.SchemaByID(id)
	if err != nil || len(s.References) != 1 || s.Parsed() == nil {
		t.Fatalf("schema by id: %+v %v", s, err)
	}
	if _, _, err := r.Register(ctx, "x", order, []Reference{{Name: "shop.address", Subject: "address", Version: 9}}); !errors.Is(err, ErrReferenceNotFound) {
		t.Fatalf("missing reference: %v", err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
