package s3

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hamba/avro/v2/ocf"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// servers are the private versitygw of each destination, by bucket, so
// a break can stop one.
var servers sync.Map

// s3-sink under the sink contract, in envelope files of each format and
// compression, read back with readers of their own (encoding/json,
// hamba's OCF decoder, parquet-go's reader); each destination a versitygw
// of its own: a real S3 server that checks signatures and conditional
// writes, stopped for the outage.
func TestS3SinkContract(t *testing.T) {
	for _, f := range []struct {
		format, compression string
		flatten             bool
	}{{"parquet", "snappy", false}, {"parquet", "zstd", true}, {"jsonl", "gzip", false}, {"jsonl", "zstd", true},
		{"avro", "zstd", false}, {"avro", "deflate", true}, {"jsonl", "none", false}} {
		name := f.format + "+" + f.compression
		if f.flatten {
			name += "+flatten"
		}
		t.Run(name, func(t *testing.T) {
			connecttest.SinkSuite(t, connecttest.SinkTarget{
				Plugin:    "s3-sink",
				New:       New,
				Semantics: connecttest.Append,
				Destination: func(t *testing.T) map[string]any {
					srv := testdb.NewS3Server(t)
					bucket := srv.Bucket(fmt.Sprintf("contract-%d", len(t.Name())))
					servers.Store(bucket+srv.Endpoint(), srv)
					return map[string]any{"bucket": bucket, "endpoint": srv.Endpoint(), "path_style": true, "prefix": "cdc",
						"access_key_id": testdb.S3AccessKey, "secret_access_key": testdb.S3SecretKey,
						"format": f.format, "compression": f.compression, "flatten": f.flatten, "flush_records": 3, "path": "${table}/p=${partition}/${yyyy}"}
				},
				Read: func(t *testing.T, params map[string]any) []connecttest.Row { return readRows(t, params) },
				Breaks: map[string]func(*testing.T, map[string]any) func(){
					"server stopped": func(t *testing.T, params map[string]any) func() {
						v, _ := servers.Load(params["bucket"].(string) + params["endpoint"].(string))
						srv := v.(*testdb.S3Server)
						srv.Stop()
						return srv.Start
					},
				},
				BadConfigs: []connecttest.BadConfig{
					{Params: map[string]any{}, Key: "bucket"},
					{Params: map[string]any{"bucket": "b", "format": "csv"}, Key: "format"},
					{Params: map[string]any{"bucket": "b", "format": "jsonl", "compression": "snappy"}, Key: "compression"},
					{Params: map[string]any{"bucket": "b", "path": "${topic}/${day}"}, Key: "path"},
					{Params: map[string]any{"bucket": "b", "timezone": "Mars/Olympus"}, Key: "timezone"},
					{Params: map[string]any{"bucket": "b", "access_key_id": "x"}, Key: "access_key_id"},
					{Params: map[string]any{"bucket": "b/c"}, Key: "bucket"},
					{Params: map[string]any{"bucket": "b", "flush_records": 0, "flush_bytes": 0}, Key: "flush_records"},
					{Params: map[string]any{"bucket": "b", "upload_part_bytes": 1024}, Key: "upload_part_bytes"},
				},
			})
		})
	}
}

// client is an SDK client of the destination in params.
func client(params map[string]any) *s3.Client {
	return s3.New(s3.Options{BaseEndpoint: aws.String(params["endpoint"].(string)), Region: testdb.S3Region, UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: testdb.S3AccessKey, SecretAccessKey: testdb.S3SecretKey}, nil
		})})
}

// object is one stored file, read back whole.
type object struct {
	key, topic string
	partition  int
	first      int64
	body       []byte
	meta       map[string]string
}

var nameRE = regexp.MustCompile(`/([^/+]+)\+(\d+)\+(\d{20})\.[a-z.]+$`)

// objects reads every object in the destination's bucket, named by its
// topic, partition and first offset.
func objects(t *testing.T, params map[string]any) []object {
	t.Helper()
	return named(t, testdb.S3Objects(t, client(params), params["bucket"].(string)))
}

func named(t *testing.T, objs []testdb.S3Object) []object {
	t.Helper()
	var out []object
	for _, o := range objs {
		m := nameRE.FindStringSubmatch(o.Key)
		if m == nil {
			t.Fatalf("object %s is not named <topic>+<partition>+<first offset>.<ext>", o.Key)
		}
		part, _ := strconv.Atoi(m[2])
		first, _ := strconv.ParseInt(m[3], 10, 64)
		out = append(out, object{key: o.Key, topic: m[1], partition: part, first: first, body: o.Body, meta: o.Meta})
	}
	return out
}

// envelope is the suite's change as the files hold it, either table's.
type envelope struct {
	Before *image `json:"before" avro:"before" parquet:"before,optional"`
	After  *image `json:"after" avro:"after" parquet:"after,optional"`
	Op     string `json:"op" avro:"op" parquet:"op"`
}

type image struct {
	ID      int64   `json:"id" avro:"id" parquet:"id"`
	V       *string `json:"v" avro:"v" parquet:"v,optional"`
	OrderID int64   `json:"order_id" avro:"order_id" parquet:"order_id"`
	Line    int32   `json:"line" avro:"line" parquet:"line"`
	SKU     string  `json:"sku" avro:"sku" parquet:"sku"`
	Qty     int32   `json:"qty" avro:"qty" parquet:"qty"`
	Price   float64 `json:"price" avro:"price" parquet:"price"`
	Note    *string `json:"note" avro:"note" parquet:"note,optional"`
	Weight  int64   `json:"weight" avro:"weight" parquet:"weight"`
}

// readRows reads the suite's records back from every object, with
// independent readers (encoding/json, hamba's OCF decoder): a record's
// offset is its file's first offset plus its place in the file.
func readRows(t *testing.T, params map[string]any) []connecttest.Row {
	t.Helper()
	var rows []connecttest.Row
	for _, o := range objects(t, params) {
		if params["flatten"] == true {
			rows = append(rows, flatRows(t, params["format"].(string), o)...)
			continue
		}
		envs := decodeAll[envelope](t, params["format"].(string), o)
		if n := strconv.Itoa(len(envs)); o.meta["eddy-records"] != n {
			t.Fatalf("%s: metadata says %s records, the file holds %s", o.key, o.meta["eddy-records"], n)
		}
		for i, e := range envs {
			row := connecttest.Row{Table: "parts", Partition: o.partition, Offset: o.first + int64(i), Op: e.Op}
			img := e.After
			if img == nil {
				img = e.Before
			}
			switch {
			case o.topic == connecttest.LinesTopic:
				row.Table, row.Key = "lines", connecttest.LinesKey(img.OrderID, int64(img.Line))
				if e.Op != "d" {
					row.Value = connecttest.LinesValue(img.SKU, int64(img.Qty), img.Price, img.Note, img.Weight)
				}
			case img != nil:
				row.Key = fmt.Sprint(img.ID)
				if img.V != nil && e.Op != "d" {
					row.Value = *img.V
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// decodeAll reads every record of an object with a reader independent of
// the sink's: encoding/json (after gzip or zstd, by the name), hamba's OCF
// decoder, parquet-go's reader.
func decodeAll[T any](t *testing.T, format string, o object) []T {
	t.Helper()
	var out []T
	switch format {
	case "jsonl":
		var r io.Reader = bytes.NewReader(o.body)
		switch {
		case strings.HasSuffix(o.key, ".gz"):
			z, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("%s: %v", o.key, err)
			}
			r = z
		case strings.HasSuffix(o.key, ".zst"):
			z, err := zstd.NewReader(r)
			if err != nil {
				t.Fatalf("%s: %v", o.key, err)
			}
			defer z.Close()
			r = z
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var e T
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: line %q: %v", o.key, sc.Text(), err)
			}
			out = append(out, e)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", o.key, err)
		}
	case "avro":
		d, err := ocf.NewDecoder(bytes.NewReader(o.body))
		if err != nil {
			t.Fatalf("%s: %v", o.key, err)
		}
		for d.HasNext() {
			var e T
			if err := d.Decode(&e); err != nil {
				t.Fatalf("%s: %v", o.key, err)
			}
			out = append(out, e)
		}
		if err := d.Error(); err != nil {
			t.Fatalf("%s: %v", o.key, err)
		}
	case "parquet":
		r := parquet.NewGenericReader[T](bytes.NewReader(o.body))
		defer r.Close()
		buf := make([]T, 64)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", o.key, err)
			}
		}
	default:
		t.Fatalf("no reader for %s", format)
	}
	return out
}

// flat is a flattened change of either table: every column can be null.
type flat struct {
	ID        *int64   `json:"id" avro:"id" parquet:"id,optional"`
	V         *string  `json:"v" avro:"v" parquet:"v,optional"`
	OrderID   *int64   `json:"order_id" avro:"order_id" parquet:"order_id,optional"`
	Line      *int32   `json:"line" avro:"line" parquet:"line,optional"`
	SKU       *string  `json:"sku" avro:"sku" parquet:"sku,optional"`
	Qty       *int32   `json:"qty" avro:"qty" parquet:"qty,optional"`
	Price     *float64 `json:"price" avro:"price" parquet:"price,optional"`
	Note      *string  `json:"note" avro:"note" parquet:"note,optional"`
	Weight    *int64   `json:"weight" avro:"weight" parquet:"weight,optional"`
	Op        string   `json:"__op" avro:"__op" parquet:"__op"`
	Partition int32    `json:"__partition" avro:"__partition" parquet:"__partition"`
	Offset    int64    `json:"__offset" avro:"__offset" parquet:"__offset"`
}

// flatRows reads flattened changes back: each carries its partition and
// offset, which must agree with the object's name and order.
func flatRows(t *testing.T, format string, o object) []connecttest.Row {
	t.Helper()
	fs := decodeAll[flat](t, format, o)
	var rows []connecttest.Row
	for i, f := range fs {
		if int(f.Partition) != o.partition || f.Offset < o.first || (i > 0 && f.Offset <= fs[i-1].Offset) {
			t.Fatalf("%s: row %d says partition %d offset %d", o.key, i, f.Partition, f.Offset)
		}
		row := connecttest.Row{Table: "parts", Partition: o.partition, Offset: f.Offset, Op: f.Op}
		switch {
		case f.Op == "t":
		case o.topic == connecttest.LinesTopic:
			row.Table, row.Key = "lines", connecttest.LinesKey(*f.OrderID, int64(*f.Line))
			if f.Op != "d" {
				row.Value = connecttest.LinesValue(*f.SKU, int64(*f.Qty), *f.Price, f.Note, *f.Weight)
			}
		default:
			row.Key = fmt.Sprint(*f.ID)
			if f.V != nil && f.Op != "d" {
				row.Value = *f.V
			}
		}
		if f.Op == "t" && o.topic == connecttest.LinesTopic {
			row.Table = "lines"
		}
		rows = append(rows, row)
	}
	return rows
}
