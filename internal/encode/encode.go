// Package encode writes delivered objects: events as NDJSON or a JSON array,
// compressed with gzip, zstd or not at all, streaming so memory does not grow
// with the size of the object.
package encode

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Writer encodes events into an object body.
type Writer struct {
	out    io.Writer
	comp   io.WriteCloser // nil when uncompressed
	format string
	count  int64
}

// NewWriter returns a Writer that encodes events in format ("ndjson" or
// "json") compressed with compression ("gzip", "zstd" or "none") into w.
func NewWriter(w io.Writer, format, compression string) (*Writer, error) {
	if format != "ndjson" && format != "json" {
		return nil, fmt.Errorf("unknown format %q", format)
	}
	ew := &Writer{out: w, format: format}
	switch compression {
	case "gzip":
		gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		ew.comp, ew.out = gz, gz
	case "zstd":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		ew.comp, ew.out = zw, zw
	case "none":
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	return ew, nil
}

var (
	newline    = []byte("\n")
	arrayOpen  = []byte("[\n")
	arrayComma = []byte(",\n")
)

// Write appends one event (a JSON document, without a trailing newline).
func (w *Writer) Write(event []byte) error {
	if w.format == "json" {
		sep := arrayComma
		if w.count == 0 {
			sep = arrayOpen
		}
		if _, err := w.out.Write(sep); err != nil {
			return err
		}
	}
	if _, err := w.out.Write(event); err != nil {
		return err
	}
	if w.format == "ndjson" {
		if _, err := w.out.Write(newline); err != nil {
			return err
		}
	}
	w.count++
	return nil
}

// Count is the number of events written.
func (w *Writer) Count() int64 { return w.count }

// Close ends the document and flushes the compressor. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.format == "json" {
		end := "\n]\n"
		if w.count == 0 {
			end = "[]\n"
		}
		if _, err := io.WriteString(w.out, end); err != nil {
			return err
		}
	}
	if w.comp != nil {
		return w.comp.Close()
	}
	return nil
}

// Extension is the key suffix for format and compression, e.g. ".ndjson.gz".
func Extension(format, compression string) string {
	ext := "." + format
	switch compression {
	case "gzip":
		ext += ".gz"
	case "zstd":
		ext += ".zst"
	}
	return ext
}

// ContentType is the object's Content-Type for format.
func ContentType(format string) string {
	switch format {
	case "json":
		return "application/json"
	case "parquet":
		return "application/vnd.apache.parquet"
	}
	return "application/x-ndjson"
}

// ContentEncoding is the object's Content-Encoding for compression, "" for none.
func ContentEncoding(compression string) string {
	switch compression {
	case "gzip":
		return "gzip"
	case "zstd":
		return "zstd"
	}
	return ""
}
