// Package encode writes delivered objects: events as NDJSON or a JSON array,
// compressed with gzip, zstd or not at all, streaming so memory does not grow
// with the size of the object.
package encode

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Writer encodes events into an object body.
type Writer struct {
	out    io.Writer
	comp   compressor // nil when uncompressed
	format string
	count  int64
}

// compressor is a pooled gzip or zstd writer.
type compressor interface {
	io.WriteCloser
	// release gives the compressor back to its pool once closed.
	release()
}

// A compressor is the costly part of a small object: gzip's and zstd's
// tables are hundreds of KiB, allocated and cleared for every object of a
// few KB that a quiet destination writes. Closed compressors are kept in
// pools and Reset onto the next object instead.
var (
	gzipPool = sync.Pool{New: func() any {
		gz, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return gz
	}}
	zstdPool = sync.Pool{New: func() any {
		// Concurrency 1: an object is encoded by one goroutine, and the
		// encoder then holds one window, not one per core.
		zw, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		return zw
	}}
)

type pooledGzip struct{ *gzip.Writer }

func (g pooledGzip) release() { g.Reset(nil); gzipPool.Put(g.Writer) }

type pooledZstd struct{ *zstd.Encoder }

func (z pooledZstd) release() { z.Reset(nil); zstdPool.Put(z.Encoder) }

// errClosed is the error of a Write after Close.
var errClosed = errors.New("encode: write after close")

type closedWriter struct{}

func (closedWriter) Write([]byte) (int, error) { return 0, errClosed }

// NewWriter returns a Writer that encodes events in format ("ndjson" or
// "json") compressed with compression ("gzip", "zstd" or "none") into w.
func NewWriter(w io.Writer, format, compression string) (*Writer, error) {
	if format != "ndjson" && format != "json" {
		return nil, fmt.Errorf("unknown format %q", format)
	}
	ew := &Writer{out: w, format: format}
	switch compression {
	case "gzip":
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(w)
		ew.comp, ew.out = pooledGzip{gz}, gz
	case "zstd":
		zw := zstdPool.Get().(*zstd.Encoder)
		zw.Reset(w)
		ew.comp, ew.out = pooledZstd{zw}, zw
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
// underlying writer. The Writer cannot be written after; its compressor goes
// back to the pool when the flush succeeded (after a failed one it is left
// to the garbage collector, in whatever state the failure left it). A
// Writer abandoned without Close only costs its compressor.
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
	comp := w.comp
	w.comp, w.out = nil, closedWriter{}
	if comp == nil {
		return nil
	}
	if err := comp.Close(); err != nil {
		return err
	}
	comp.release()
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
