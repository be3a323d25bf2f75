package avrobin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort is data that ends before the value does.
var ErrShort = errors.New("avro: data ends early")

// Reader reads Avro binary from a byte slice.
type Reader struct {
	b []byte
	i int
	// Depth is how deeply records nest at the current point; decoders
	// bound it so a recursive schema cannot exhaust the stack.
	Depth int
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset reads b from its start.
func (r *Reader) Reset(b []byte) { r.b, r.i, r.Depth = b, 0, 0 }

// Offset is how many bytes have been read.
func (r *Reader) Offset() int { return r.i }

// Long reads a zig-zag varint (an int, long, enum, union branch or length).
func (r *Reader) Long() (int64, error) {
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		return 0, ErrShort
	}
	r.i += n
	return v, nil
}

// Take returns the next n bytes; they alias the input.
func (r *Reader) Take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, ErrShort
	}
	b := r.b[r.i : r.i+n]
	r.i += n
	return b, nil
}

// Bytes reads a length-prefixed bytes or string; they alias the input.
func (r *Reader) Bytes() ([]byte, error) {
	n, err := r.Long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(r.b)-r.i) {
		return nil, ErrShort
	}
	return r.Take(int(n))
}

// Str reads a string.
func (r *Reader) Str() (string, error) {
	b, err := r.Bytes()
	return string(b), err
}

// Blocks reads the blocks of an array or map, calling item per item.
func (r *Reader) Blocks(item func() error) error {
	for {
		n, err := r.Long()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n < 0 {
			n = -n
			if _, err := r.Long(); err != nil { // the block's size in bytes
				return err
			}
		}
		// Items of most types take a byte or more; null takes none. Bound
		// the count so a corrupt one cannot make us loop for ages.
		if n > int64(len(r.b)-r.i)+1<<20 {
			return ErrShort
		}
		for range n {
			if err := item(); err != nil {
				return err
			}
		}
	}
}

// Boolean reads a boolean.
func (r *Reader) Boolean() (bool, error) {
	b, err := r.Take(1)
	if err != nil {
		return false, err
	}
	return b[0] != 0, nil
}

// Int reads an int: a varint that must fit in 32 bits.
func (r *Reader) Int() (int64, error) {
	n, err := r.Long()
	if err == nil && (n < math.MinInt32 || n > math.MaxInt32) {
		return 0, fmt.Errorf("int: %d is out of range", n)
	}
	return n, err
}

// Float reads a float.
func (r *Reader) Float() (float32, error) {
	b, err := r.Take(4)
	if err != nil {
		return 0, err
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
}

// Double reads a double.
func (r *Reader) Double() (float64, error) {
	b, err := r.Take(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}
