package avrobin

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// COPY's binary format, for raw rows whose every field pairs an Avro type
// with a column type below: PostgreSQL parses it a third faster than the
// text format (no numbers, dates or timestamps to read from text), and it
// is cheaper to write. A row is a field count, then each field as its
// length and its bytes in the type's send/recv form, -1 for NULL. The
// server applies a column's type modifier (numeric(p,s), varchar(n),
// timestamp(3)) as it does to text. Every other pairing takes the text
// format, as does a batch with a row that is not raw.

// CopyBinaryHeader starts a binary COPY stream: signature, flags, no
// header extension.
const CopyBinaryHeader = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// CopyBinaryTrailer ends it: a field count of -1.
const CopyBinaryTrailer = "\xff\xff"

// CopyBinary renders an after-image's fields as one binary COPY tuple:
// each field as its length and bytes, or -1 for NULL.
type CopyBinary []fieldWriter

// CompileCopyBinary builds the binary renderer of a record schema for a
// target table's column types; ok is false when a field pairs types the
// binary form does not cover.
func CompileCopyBinary(rs *avro.RecordSchema, cols map[string]string) (CopyBinary, bool) {
	if len(rs.Fields()) > math.MaxInt16 {
		return nil, false
	}
	out := make(CopyBinary, 0, len(rs.Fields()))
	for _, f := range rs.Fields() {
		fb := compileFieldBinary(f.Type(), pgKindOf(cols[f.Name()]))
		if fb == nil {
			return nil, false
		}
		out = append(out, fb)
	}
	return out, true
}

func (rb CopyBinary) Append(r *Reader, dst, after []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(rb)))
	r.Reset(after)
	for _, f := range rb {
		var err error
		if dst, err = f(r, dst); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// pgKind is a column type as far as its binary form goes.
type pgKind byte

const (
	pgOther pgKind = iota
	pgBool
	pgInt2
	pgInt4
	pgInt8
	pgFloat4
	pgFloat8
	pgString  // text, varchar(n), char(n)
	pgBytea   // bytea
	pgNumeric // numeric, numeric(p,s)
	pgDate
	pgTimestamp // with or without time zone: microseconds since 2000 either way
	pgTime      // without time zone
	pgUUID
)

// pgKindOf reads a column type as format_type prints it, or as the sink
// names it when it creates the column.
func pgKindOf(typ string) pgKind {
	if strings.HasSuffix(typ, "]") { // an array of any of these
		return pgOther
	}
	base, _, _ := strings.Cut(typ, "(")
	switch base {
	case "boolean":
		return pgBool
	case "smallint":
		return pgInt2
	case "integer":
		return pgInt4
	case "bigint":
		return pgInt8
	case "real":
		return pgFloat4
	case "double precision":
		return pgFloat8
	case "text", "character varying", "character":
		return pgString
	case "bytea":
		return pgBytea
	case "numeric":
		return pgNumeric
	case "date":
		return pgDate
	case "timestamp", "timestamptz":
		if typ == "timestamp" || typ == "timestamptz" || strings.HasSuffix(typ, " time zone") {
			return pgTimestamp
		}
	case "timestamp without time zone", "timestamp with time zone":
		return pgTimestamp
	case "time", "time without time zone":
		if typ == "time" || strings.HasSuffix(typ, "without time zone") {
			return pgTime
		}
	case "uuid":
		return pgUUID
	}
	return pgOther
}

func compileFieldBinary(t avro.Schema, kind pgKind) fieldWriter {
	return compileField(t, func(v avro.Schema) fieldWriter { return compileValueBinary(v, kind) },
		func(_ *Reader, dst []byte) ([]byte, error) { return append(dst, 0xff, 0xff, 0xff, 0xff), nil })
}

// Where PostgreSQL's dates and timestamps count from, in the Unix
// epoch's days and microseconds.
const (
	pgEpochDays   = 10957
	pgEpochMicros = pgEpochDays * 86400 * 1000000
)

// compileValueBinary pairs a non-null Avro type with a column kind; nil
// for the pairs it does not cover.
func compileValueBinary(t avro.Schema, kind pgKind) fieldWriter {
	t = Deref(t)
	lengthAndBytes := func(r *Reader, dst []byte) ([]byte, error) {
		b, err := r.Bytes()
		if err != nil {
			return dst, err
		}
		return append(binary.BigEndian.AppendUint32(dst, uint32(len(b))), b...), nil
	}
	switch k := KindOf(t); k {
	case KindBoolean:
		if kind != pgBool {
			return nil
		}
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Boolean()
			if err != nil {
				return dst, err
			}
			v := byte(0)
			if b {
				v = 1
			}
			return append(dst, 0, 0, 0, 1, v), nil
		}
	case KindInt, KindLong, KindDate, KindTimeMillis, KindTimeMicros,
		KindTimestampMillis, KindTimestampMicros, KindLocalTimestampMillis, KindLocalTimestampMicros:
		return compileIntegerBinary(k, kind)
	case KindFloat:
		if kind != pgFloat4 {
			return nil // a float into double precision goes by its shortest text, as the decoded path does
		}
		return reversedBytes(4)
	case KindDouble:
		if kind != pgFloat8 {
			return nil
		}
		return reversedBytes(8)
	case KindString, KindUUID:
		return compileStringBinary(kind, lengthAndBytes)
	case KindBytes:
		if kind == pgBytea {
			return lengthAndBytes
		}
	case KindDecimal:
		if kind != pgNumeric {
			return nil
		}
		_, decimal := Logical(t)
		take, scale := (*Reader).Bytes, decimal.Scale()
		if f, ok := t.(*avro.FixedSchema); ok {
			size := f.Size()
			take = func(r *Reader) ([]byte, error) { return r.Take(size) }
		}
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := take(r)
			if err != nil {
				return dst, err
			}
			return appendNumericBinary(dst, b, scale)
		}
	}
	return nil
}

// compileStringBinary covers an Avro string: into a text column as it
// is, into numeric as a decimal's text (its special values, or an
// unconstrained decimal), into uuid parsed.
func compileStringBinary(kind pgKind, lengthAndBytes fieldWriter) fieldWriter {
	parsed := func(parse func(dst, b []byte) ([]byte, error)) fieldWriter {
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			if err != nil {
				return dst, err
			}
			return parse(dst, b)
		}
	}
	switch kind {
	case pgString:
		return lengthAndBytes
	case pgNumeric:
		return parsed(appendNumericText)
	case pgUUID:
		return parsed(func(dst, b []byte) ([]byte, error) { return appendUUIDBinary(append(dst, 0, 0, 0, 16), b) })
	}
	return nil
}

// reversedBytes writes n bytes in the reverse order: a float's or
// double's IEEE bits, little-endian in Avro, big-endian in PostgreSQL.
func reversedBytes(n int) fieldWriter {
	return func(r *Reader, dst []byte) ([]byte, error) {
		b, err := r.Take(n)
		if err != nil {
			return dst, err
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		for i := n - 1; i >= 0; i-- {
			dst = append(dst, b[i])
		}
		return dst, nil
	}
}

// compileIntegerBinary covers Avro int and long: plain integers into the
// integer columns, and the logical dates, times and timestamps.
func compileIntegerBinary(k Kind, kind pgKind) fieldWriter {
	read := (*Reader).Long
	switch k {
	case KindInt, KindDate, KindTimeMillis:
		read = (*Reader).Int
	}
	switch k {
	case KindInt, KindLong:
		return integerBinary(kind, read)
	case KindDate:
		return dateBinary(kind, read)
	case KindTimestampMillis, KindLocalTimestampMillis:
		return timestampBinary(kind, read, true)
	case KindTimestampMicros, KindLocalTimestampMicros:
		return timestampBinary(kind, read, false)
	case KindTimeMillis:
		return timeBinary(kind, read, 1000)
	case KindTimeMicros:
		return timeBinary(kind, read, 1)
	}
	return nil
}

// integerBinary writes a plain int or long into int2, int4 or int8, range-checked.
func integerBinary(kind pgKind, read func(*Reader) (int64, error)) fieldWriter {
	var size int
	var lo, hi int64
	switch kind {
	case pgInt2:
		size, lo, hi = 2, math.MinInt16, math.MaxInt16
	case pgInt4:
		size, lo, hi = 4, math.MinInt32, math.MaxInt32
	case pgInt8:
		size, lo, hi = 8, math.MinInt64, math.MaxInt64
	default:
		return nil
	}
	return func(r *Reader, dst []byte) ([]byte, error) {
		n, err := read(r)
		if err != nil {
			return dst, err
		}
		if n < lo || n > hi {
			return dst, fmt.Errorf("%d is out of range for a %d-byte integer column", n, size)
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(size))
		switch size {
		case 2:
			return binary.BigEndian.AppendUint16(dst, uint16(n)), nil
		case 4:
			return binary.BigEndian.AppendUint32(dst, uint32(n)), nil
		}
		return binary.BigEndian.AppendUint64(dst, uint64(n)), nil
	}
}

// dateBinary writes a date (days) into date, or into timestamp at midnight UTC.
func dateBinary(kind pgKind, read func(*Reader) (int64, error)) fieldWriter {
	if kind == pgTimestamp { // midnight UTC
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := read(r)
			if err != nil {
				return dst, err
			}
			us := (n - pgEpochDays) * 86400 * 1000000 // |n| < 2^31: no overflow
			switch n {
			case math.MaxInt32:
				us = math.MaxInt64
			case math.MinInt32:
				us = math.MinInt64
			}
			return binary.BigEndian.AppendUint64(append(dst, 0, 0, 0, 8), uint64(us)), nil
		}
	}
	if kind != pgDate {
		return nil
	}
	return func(r *Reader, dst []byte) ([]byte, error) {
		n, err := read(r)
		if err != nil {
			return dst, err
		}
		dst = append(dst, 0, 0, 0, 4)
		switch n { // the sources' infinities (see appendPgTime) are PostgreSQL's
		case math.MaxInt32, math.MinInt32:
			return binary.BigEndian.AppendUint32(dst, uint32(int32(n))), nil
		}
		return binary.BigEndian.AppendUint32(dst, uint32(int32(n-pgEpochDays))), nil // |n| < 2^31 - 10957: no wrap
	}
}

// timestampBinary writes a timestamp (in millis when millis, else micros)
// into timestamp.
func timestampBinary(kind pgKind, read func(*Reader) (int64, error), millis bool) fieldWriter {
	if kind != pgTimestamp {
		return nil
	}
	return func(r *Reader, dst []byte) ([]byte, error) {
		n, err := read(r)
		if err != nil {
			return dst, err
		}
		us, err := pgMicros(n, millis)
		if err != nil {
			return dst, err
		}
		return binary.BigEndian.AppendUint64(append(dst, 0, 0, 0, 8), uint64(us)), nil
	}
}

// timeBinary writes a time of day, in units of scale microseconds, into
// time.
func timeBinary(kind pgKind, read func(*Reader) (int64, error), scale int64) fieldWriter {
	if kind != pgTime {
		return nil
	}
	return func(r *Reader, dst []byte) ([]byte, error) {
		n, err := read(r)
		if err != nil {
			return dst, err
		}
		return binary.BigEndian.AppendUint64(append(dst, 0, 0, 0, 8), uint64(n*scale)), nil // the server checks the range
	}
}

// pgMicros turns an Avro timestamp into PostgreSQL's microseconds since
// 2000, its infinities included (those appendPgTime writes as such).
func pgMicros(n int64, millis bool) (int64, error) {
	const infDateMillis = math.MaxInt32 * 86400 * 1000 // a date's infinity, read as a timestamp
	switch {
	case !millis && n == math.MaxInt64, millis && n == infDateMillis:
		return math.MaxInt64, nil
	case !millis && n == math.MinInt64, millis && n == -infDateMillis-86400*1000:
		return math.MinInt64, nil
	}
	if millis {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, fmt.Errorf("timestamp %d ms is out of range", n)
		}
		n *= 1000
	}
	if n < math.MinInt64+pgEpochMicros {
		return 0, fmt.Errorf("timestamp %d µs is out of range", n)
	}
	return n - pgEpochMicros, nil
}

// appendNumericBinary writes an Avro decimal (big-endian two's complement,
// over 10^scale) in numeric's binary form: base-10000 digits, the weight
// of the first, a sign and the display scale. The display scale is that
// of the shortest exact decimal, as the text path's value has.
func appendNumericBinary(dst, b []byte, scale int) ([]byte, error) {
	var digits []byte // decimal digits of the magnitude
	var buf [24]byte
	neg := len(b) > 0 && b[0]&0x80 != 0
	if len(b) <= 8 {
		var v int64
		if neg {
			v = -1
		}
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		u := uint64(v)
		if neg {
			u = -u
		}
		digits = strconv.AppendUint(buf[:0], u, 10)
	} else {
		n := new(big.Int).SetBytes(b)
		if neg {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
		}
		digits = n.Abs(n).Append(buf[:0], 10)
	}
	if string(digits) == "0" {
		return append(dst, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0), nil // zero: no digits, weight 0, positive, scale 0
	}
	for scale > 0 && digits[len(digits)-1] == '0' { // the shortest exact decimal, as the text path writes it
		digits, scale = digits[:len(digits)-1], scale-1
	}
	return appendNumeric(dst, neg, digits, scale, scale)
}

// Numeric's sign word, and its special values.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// appendNumeric writes the value ±digits/10^scale (digits decimal,
// without leading zeros) with display scale dscale.
func appendNumeric(dst []byte, neg bool, digits []byte, scale, dscale int) ([]byte, error) {
	if dscale > 0x3fff || dscale < 0 {
		return dst, fmt.Errorf("decimal scale %d is out of range", dscale)
	}
	// Base-10000 groups aligned on the decimal point: the digit of
	// exponent e (its place value is 10^e) falls in the group of weight
	// floor(e/4).
	intDigits := len(digits) - scale // ≤ 0 for a fraction under 0.1
	group := func(e int) int {
		if e >= 0 {
			return e / 4
		}
		return -((-e + 3) / 4)
	}
	weight := group(intDigits - 1)
	var groups [40]uint16
	gs := groups[:0]
	for range weight - group(-scale) + 1 {
		gs = append(gs, 0)
	}
	for k, c := range digits {
		e := intDigits - 1 - k
		g := group(e)
		gs[weight-g] += uint16(c-'0') * pow10k[e-4*g]
	}
	for len(gs) > 0 && gs[0] == 0 { // leading zero groups
		gs, weight = gs[1:], weight-1
	}
	for len(gs) > 0 && gs[len(gs)-1] == 0 {
		gs = gs[:len(gs)-1]
	}
	if len(gs) == 0 {
		weight, neg = 0, false
	}
	if len(gs) > math.MaxInt16 || weight < math.MinInt16 || weight > math.MaxInt16 {
		return dst, fmt.Errorf("decimal with %d digits is out of range", len(digits))
	}
	sign := uint16(numericPos)
	if neg {
		sign = numericNeg
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(8+2*len(gs)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(gs)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(dscale))
	for _, g := range gs {
		dst = binary.BigEndian.AppendUint16(dst, g)
	}
	return dst, nil
}

// appendNumericText writes a numeric given as text, read as PostgreSQL's
// numeric input reads it: surrounding spaces, NaN and the infinities in
// any case, a sign, digits with a point, an exponent; the display scale
// is the digits after the point less the exponent, trailing zeros kept.
func appendNumericText(dst, text []byte) ([]byte, error) {
	s := strings.TrimSpace(string(text))
	special := func(sign uint16) ([]byte, error) {
		dst = append(dst, 0, 0, 0, 8, 0, 0, 0, 0) // 8 bytes: no digits, weight 0
		return append(binary.BigEndian.AppendUint16(dst, sign), 0, 0), nil
	}
	switch strings.ToLower(s) {
	case "nan":
		return special(numericNaN)
	case "infinity", "+infinity", "inf", "+inf":
		return special(numericPInf)
	case "-infinity", "-inf":
		return special(numericNInf)
	}
	bad := func() ([]byte, error) { return dst, fmt.Errorf("invalid input syntax for type numeric: %q", text) }
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	var digits []byte
	frac, seen, point := 0, false, false
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			seen = true
			if len(digits) > 0 || c != '0' {
				digits = append(digits, c)
			}
			if point {
				frac++
			}
			continue
		case c == '.' && !point:
			point = true
			continue
		}
		break
	}
	if !seen {
		return bad()
	}
	exp := 0
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return bad()
		}
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return bad()
		}
		exp = e
	}
	// The value is digits × 10^(exp - frac), counting the leading zeros
	// dropped from digits.
	if len(digits) == 0 {
		return appendNumeric(dst, false, nil, 0, max(0, frac-exp))
	}
	scale := frac - exp
	if scale < 0 {
		for range -scale {
			digits = append(digits, '0')
		}
		scale = 0
	}
	return appendNumeric(dst, neg, digits, scale, max(0, frac-exp))
}

// appendUUIDBinary writes a UUID's 16 bytes from the text PostgreSQL's
// uuid input reads: 32 hex digits, a hyphen allowed after any group of
// four, the whole optionally in braces.
func appendUUIDBinary(dst, s []byte) ([]byte, error) {
	in := s
	braces := len(s) > 0 && s[0] == '{'
	if braces {
		s = s[1:]
	}
	for i := range 16 {
		if len(s) < 2 {
			return dst, fmt.Errorf("invalid uuid %q", in)
		}
		hi, ok1 := unhex(s[0])
		lo, ok2 := unhex(s[1])
		if !ok1 || !ok2 {
			return dst, fmt.Errorf("invalid uuid %q", in)
		}
		dst = append(dst, hi<<4|lo)
		s = s[2:]
		if len(s) > 0 && s[0] == '-' && i%2 == 1 && i < 15 {
			s = s[1:]
		}
	}
	if braces {
		if len(s) == 0 || s[0] != '}' {
			return dst, fmt.Errorf("invalid uuid %q", in)
		}
		s = s[1:]
	}
	if len(s) != 0 {
		return dst, fmt.Errorf("invalid uuid %q", in)
	}
	return dst, nil
}

var pow10k = [4]uint16{1, 10, 100, 1000}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
