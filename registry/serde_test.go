package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// changeEvent is a 20-field change event, about what a row becomes.
const changeEvent = `{"type":"record","name":"orders","namespace":"eddy.bench","fields":[
 {"name":"id","type":"long"},{"name":"customer_id","type":"long"},{"name":"status","type":"string"},
 {"name":"amount_cents","type":"long"},{"name":"currency","type":"string"},{"name":"quantity","type":"int"},
 {"name":"sku","type":"string"},{"name":"created_at","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"updated_at","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"paid","type":"boolean"},
 {"name":"discount","type":"double"},{"name":"note","type":["null","string"],"default":null},
 {"name":"shipping_city","type":"string"},{"name":"shipping_zip","type":"string"},{"name":"weight_grams","type":"int"},
 {"name":"priority","type":"int"},{"name":"channel","type":"string"},{"name":"coupon","type":["null","string"],"default":null},
 {"name":"tax_cents","type":"long"},{"name":"version","type":"long"}]}`

type orderRow struct {
	ID           int64   `avro:"id"`
	CustomerID   int64   `avro:"customer_id"`
	Status       string  `avro:"status"`
	AmountCents  int64   `avro:"amount_cents"`
	Currency     string  `avro:"currency"`
	Quantity     int32   `avro:"quantity"`
	SKU          string  `avro:"sku"`
	CreatedAt    int64   `avro:"created_at"`
	UpdatedAt    int64   `avro:"updated_at"`
	Paid         bool    `avro:"paid"`
	Discount     float64 `avro:"discount"`
	Note         *string `avro:"note"`
	ShippingCity string  `avro:"shipping_city"`
	ShippingZip  string  `avro:"shipping_zip"`
	WeightGrams  int32   `avro:"weight_grams"`
	Priority     int32   `avro:"priority"`
	Channel      string  `avro:"channel"`
	Coupon       *string `avro:"coupon"`
	TaxCents     int64   `avro:"tax_cents"`
	Version      int64   `avro:"version"`
}

func sampleRow(i int64) orderRow {
	note := "leave at the door"
	return orderRow{ID: i, CustomerID: 42, Status: "paid", AmountCents: 12999, Currency: "EUR", Quantity: 3, SKU: "SKU-123-XL",
		CreatedAt: 1_760_000_000_000_000, UpdatedAt: 1_760_000_000_500_000, Paid: true, Discount: 0.1, Note: &note,
		ShippingCity: "Lyon", ShippingZip: "69001", WeightGrams: 1200, Priority: 2, Channel: "web", TaxCents: 2600, Version: 7}
}

func TestSerdeRoundTripLocalAndRemote(t *testing.T) {
	ctx := context.Background()
	srv, r := testAPI(t)
	schema := avro.MustParse(changeEvent)
	remote, err := Remote(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	writer, reader := NewSerde(Local(r)), NewSerde(remote)
	row := sampleRow(1)
	data, err := writer.Encode(ctx, nil, "orders-value", schema, row)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := SplitWire(data)
	if err != nil || data[0] != 0 || id != 1 {
		t.Fatalf("wire header: % x, id %d, %v", data[:5], id, err)
	}
	var got orderRow
	if _, err := reader.Decode(ctx, data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, row) || got.Coupon != nil {
		t.Fatalf("round trip: %+v", got)
	}
	js, err := reader.DecodeJSON(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil || m["sku"] != "SKU-123-XL" || m["coupon"] != nil || len(m) != 20 {
		t.Fatalf("json: %s %v", js, err)
	}
	// A second encode asks the registry nothing new: same id.
	again, _ := writer.Encode(ctx, nil, "orders-value", schema, sampleRow(2))
	if !bytes.Equal(again[:5], data[:5]) {
		t.Fatal("the schema id changed between records")
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0, 1}, {0, 0, 0}} {
		if _, err := reader.Decode(ctx, bad, &got); !errors.Is(err, ErrNotWireFormat) {
			t.Errorf("decode % x: %v", bad, err)
		}
	}
	if _, err := reader.Decode(ctx, []byte{0, 0, 0, 0, 99, 1}, &got); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Errorf("unknown schema id: %v", err)
	}
}

// BenchmarkWireEncodeDecode20Fields encodes and decodes a 20-field change
// event through the wire format, schemas from the serde's cache.
func BenchmarkWireEncodeDecode20Fields(b *testing.B) {
	l := openLog(&testing.T{}, b.TempDir())
	defer l.Close()
	r, err := Open(context.Background(), l)
	if err != nil {
		b.Fatal(err)
	}
	serde := NewSerde(Local(r))
	schema := avro.MustParse(changeEvent)
	ctx := context.Background()
	row := sampleRow(1)
	var got orderRow
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data, err := serde.Encode(ctx, buf[:0], "orders-value", schema, &row)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := serde.Decode(ctx, data, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSchemaByIDCached looks a schema up by id from the serde's cache.
func BenchmarkSchemaByIDCached(b *testing.B) {
	l := openLog(&testing.T{}, b.TempDir())
	defer l.Close()
	r, _ := Open(context.Background(), l)
	serde := NewSerde(Local(r))
	id, err := serde.Register(context.Background(), "s", avro.MustParse(changeEvent))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := serde.Schema(context.Background(), id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkLookupOverHTTP is POST /subjects/{s} of an existing schema on
// loopback, from concurrent keep-alive clients: the server's rate.
func BenchmarkLookupOverHTTP(b *testing.B) {
	l := openLog(&testing.T{}, b.TempDir())
	defer l.Close()
	r, _ := Open(context.Background(), l)
	if _, _, err := r.Register(context.Background(), "orders-value", changeEvent, nil); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(NewAPI(r, quietLogger()))
	defer srv.Close()
	body, _ := json.Marshal(schemaRequest{Schema: changeEvent})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL+"/subjects/orders-value", ContentType, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

func TestEncodeJSONMatchesDecodedAvro(t *testing.T) {
	ctx := context.Background()
	_, r := testAPI(t)
	serde := NewSerde(Local(r))
	schema := avro.MustParse(changeEvent)
	row := sampleRow(5)
	js, err := EncodeJSON(schema, row)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := serde.Encode(ctx, nil, "orders-value", schema, row)
	if err != nil {
		t.Fatal(err)
	}
	fromAvro, err := serde.DecodeJSON(ctx, wire)
	if err != nil || !bytes.Equal(js, fromAvro) {
		t.Fatalf("json %s\nfrom avro %s (%v)", js, fromAvro, err)
	}
	if _, err := EncodeJSON(schema, map[string]any{"id": "not a number"}); err == nil {
		t.Fatal("a value that does not fit the schema was rendered")
	}
}

// Decimals render as their exact text, not as a fraction.
func TestDecodeJSONDecimals(t *testing.T) {
	ctx := context.Background()
	_, r := testAPI(t)
	serde := NewSerde(Local(r))
	schema := avro.MustParse(`{"type":"record","name":"p","fields":[{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
		{"name":"list","type":{"type":"array","items":{"type":"bytes","logicalType":"decimal","precision":65,"scale":30}}}]}`)
	v := map[string]any{"price": big.NewRat(1999, 100), "list": []any{new(big.Rat).SetInt64(-7), nil}}
	v["list"].([]any)[1], _ = new(big.Rat).SetString("12345678901234567890123456789012345.123456789012345678901234567891")
	wire, err := serde.Encode(ctx, nil, "p-value", schema, v)
	if err != nil {
		t.Fatal(err)
	}
	js, err := serde.DecodeJSON(ctx, wire)
	if want := `{"list":["-7","12345678901234567890123456789012345.123456789012345678901234567891"],"price":"19.99"}`; err != nil || string(js) != want {
		t.Fatalf("%s (%v), want %s", js, err, want)
	}
}

func TestParsingCanonicalForm(t *testing.T) {
	_, r := testAPI(t)
	text := `{"type":"record","name":"user","namespace":"shop","doc":"people","fields":[{"name":"id","type":"long","doc":"key","default":0}]}`
	mustRegister(t, r, "s", text)
	v, err := r.Get("s", Latest, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.Schema.Canonical(), `{"name":"shop.user","type":"record","fields":[{"name":"id","type":"long"}]}`; got != want {
		t.Fatalf("canonical form %s, want %s", got, want)
	}
	if v.Schema.Text != text {
		t.Fatal("the registered text must be kept as written")
	}
}

// A Serde registers the whole schema, defaults and docs included, and two
// schemas that differ only in a default get their own versions: the
// registry's compatibility checks depend on defaults.
func TestSerdeRegistersDefaults(t *testing.T) {
	ctx := context.Background()
	_, r := testAPI(t)
	s := NewSerde(Local(r))
	v1 := avro.MustParse(`{"type":"record","name":"u","fields":[{"name":"id","type":"long"}]}`)
	v2 := avro.MustParse(`{"type":"record","name":"u","fields":[{"name":"id","type":"long"},{"name":"tag","type":["null","string"],"default":null}]}`)
	v2b := avro.MustParse(`{"type":"record","name":"u","fields":[{"name":"id","type":"long"},{"name":"tag","type":["null","string"]}]}`)
	id1, err := s.Register(ctx, "u-value", v1)
	if err != nil {
		t.Fatal(err)
	}
	// BACKWARD (the default level) accepts a new field only with a default.
	id2, err := s.Register(ctx, "u-value", v2)
	if err != nil || id2 == id1 {
		t.Fatalf("adding a field with a default: id %d, %v", id2, err)
	}
	got, err := r.Get("u-value", Latest, false)
	if err != nil || !strings.Contains(got.Schema.Text, `"default":null`) {
		t.Fatalf("registered text %q, %v", got.Schema.Text, err)
	}
	if _, err := NewSerde(Local(r)).Register(ctx, "w-value", v2b); err != nil {
		t.Fatal(err)
	}
	if id, err := s.Register(ctx, "u-value", v2b); err == nil && id == id2 {
		t.Fatal("a schema without the default shared the id of the one with it")
	}
}

// Two versions of a schema that refer to the same record name, defined
// differently, each encode and decode with their own definition (a shared
// hamba/avro codec cache would give the second the first's codec).
func TestSerdeKeepsVersionsWithSameNamesApart(t *testing.T) {
	ctx := context.Background()
	_, r := testAPI(t)
	s := NewSerde(Local(r))
	parse := func(fields string) avro.Schema {
		sch, err := avro.ParseWithCache(`{"type":"record","name":"Envelope","namespace":"n","fields":[
			{"name":"before","type":["null",{"type":"record","name":"Value","fields":[`+fields+`]}],"default":null},
			{"name":"after","type":["null","Value"],"default":null}]}`, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	v1 := parse(`{"name":"id","type":"long"}`)
	v2 := parse(`{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}`)
	row1 := map[string]any{"before": nil, "after": map[string]any{"n.Value": map[string]any{"id": int64(1)}}}
	row2 := map[string]any{"before": nil, "after": map[string]any{"n.Value": map[string]any{"id": int64(2), "name": map[string]any{"string": "x"}}}}
	d1, err := s.Encode(ctx, nil, "e-value", v1, row1)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.Encode(ctx, nil, "e-value", v2, row2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		data []byte
		want string
	}{{d1, `{"after":{"n.Value":{"id":1}},"before":null}`}, {d2, `{"after":{"n.Value":{"id":2,"name":"x"}},"before":null}`}} {
		got, err := NewSerde(Local(r)).DecodeJSON(ctx, c.data) // a fresh serde, as a consumer has
		if err != nil || string(got) != c.want {
			t.Fatalf("decoded %s, %v; want %s", got, err, c.want)
		}
		got, err = s.DecodeJSON(ctx, c.data) // and the writer's own
		if err != nil || string(got) != c.want {
			t.Fatalf("decoded %s, %v; want %s", got, err, c.want)
		}
	}
}
