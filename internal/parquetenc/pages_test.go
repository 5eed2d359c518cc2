package parquetenc

import (
	"errors"
	"fmt"
)

// pageSizes walks the data page headers of one column chunk of a Parquet
// file, from its first page (as DuckDB's parquet_metadata reports it) for
// total bytes, and returns each page's uncompressed size. It reads the
// Thrift compact encoding of PageHeader itself, independently of the writer.
func pageSizes(f []byte, offset, total int64) ([]int64, error) {
	var sizes []int64
	end := offset + total
	for offset < end {
		r := &compact{b: f, i: int(offset)}
		uncompressed, compressed, err := r.pageHeader()
		if err != nil {
			return nil, fmt.Errorf("page at %d: %w", offset, err)
		}
		sizes = append(sizes, uncompressed)
		offset = int64(r.i) + compressed
	}
	return sizes, nil
}

type compact struct {
	b []byte
	i int
}

var errThrift = errors.New("bad thrift compact data")

func (c *compact) byte() (byte, error) {
	if c.i >= len(c.b) {
		return 0, errThrift
	}
	c.i++
	return c.b[c.i-1], nil
}

func (c *compact) varint() (uint64, error) {
	var n uint64
	for shift := 0; shift < 64; shift += 7 {
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return n, nil
		}
	}
	return 0, errThrift
}

func (c *compact) zigzag() (int64, error) {
	n, err := c.varint()
	return int64(n>>1) ^ -int64(n&1), err
}

// pageHeader reads a PageHeader struct: field 2 is uncompressed_page_size,
// field 3 compressed_page_size; the rest is skipped.
func (c *compact) pageHeader() (uncompressed, compressed int64, err error) {
	last := int16(0)
	for {
		b, err := c.byte()
		if err != nil {
			return 0, 0, err
		}
		if b == 0 {
			return uncompressed, compressed, nil
		}
		typ := b & 0x0f
		if d := int16(b >> 4); d != 0 {
			last += d
		} else {
			id, err := c.zigzag()
			if err != nil {
				return 0, 0, err
			}
			last = int16(id)
		}
		if (last == 2 || last == 3) && typ == 5 {
			v, err := c.zigzag()
			if err != nil {
				return 0, 0, err
			}
			if last == 2 {
				uncompressed = v
			} else {
				compressed = v
			}
			continue
		}
		if err := c.skip(typ); err != nil {
			return 0, 0, err
		}
	}
}

func (c *compact) skip(typ byte) error {
	switch typ {
	case 1, 2: // bool true/false, in the type
		return nil
	case 3: // byte
		_, err := c.byte()
		return err
	case 4, 5, 6: // i16, i32, i64
		_, err := c.varint()
		return err
	case 7: // double
		c.i += 8
		return nil
	case 8: // binary
		n, err := c.varint()
		c.i += int(n)
		return err
	case 9, 10: // list, set
		b, err := c.byte()
		if err != nil {
			return err
		}
		n := uint64(b >> 4)
		if n == 15 {
			if n, err = c.varint(); err != nil {
				return err
			}
		}
		for k := uint64(0); k < n; k++ {
			if err := c.skip(b & 0x0f); err != nil {
				return err
			}
		}
		return nil
	case 11: // map
		n, err := c.varint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := c.byte()
		if err != nil {
			return err
		}
		for k := uint64(0); k < n; k++ {
			if err := c.skip(kv >> 4); err != nil {
				return err
			}
			if err := c.skip(kv & 0x0f); err != nil {
				return err
			}
		}
		return nil
	case 12: // struct
		for {
			b, err := c.byte()
			if err != nil {
				return err
			}
			if b == 0 {
				return nil
			}
			if b>>4 == 0 {
				if _, err := c.zigzag(); err != nil {
					return err
				}
			}
			if err := c.skip(b & 0x0f); err != nil {
				return err
			}
		}
	}
	return errThrift
}
