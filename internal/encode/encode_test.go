package encode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func decompress(t *testing.T, compression string, data []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(data)
	switch compression {
	case "gzip":
		gz, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriter(t *testing.T) {
	events := []string{`{"a":1}`, `{"b":2.50,"a":"x"}`}
	tests := []struct {
		format, compression string
		events              []string
		want                string
	}{
		{"ndjson", "none", events, "{\"a\":1}\n{\"b\":2.50,\"a\":\"x\"}\n"},
		{"ndjson", "gzip", events, "{\"a\":1}\n{\"b\":2.50,\"a\":\"x\"}\n"},
		{"ndjson", "zstd", events, "{\"a\":1}\n{\"b\":2.50,\"a\":\"x\"}\n"},
		{"json", "none", events, "[\n{\"a\":1},\n{\"b\":2.50,\"a\":\"x\"}\n]\n"},
		{"json", "gzip", nil, "[]\n"},
		{"ndjson", "none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.compression, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tt.format, tt.compression)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.events {
				if err := w.Write([]byte(e)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := decompress(t, tt.compression, buf.Bytes())
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.format == "json" && !json.Valid(got) {
				t.Fatalf("json output is not valid JSON: %q", got)
			}
			if w.Count() != int64(len(tt.events)) {
				t.Fatalf("Count() = %d, want %d", w.Count(), len(tt.events))
			}
		})
	}
}

// Compressors are pooled: objects written one after another, and objects
// open at the same time, each decode to exactly their own events, whatever
// compressor the previous object left in the pool. A Writer refuses writes
// once closed, since its compressor may already serve another object.
func TestWriterReusesCompressors(t *testing.T) {
	for _, compression := range []string{"gzip", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			const objects = 6
			bufs := make([]bytes.Buffer, objects)
			writers := make([]*Writer, objects)
			want := make([]string, objects)
			// Rounds of two objects open together, each closed before the
			// next round takes compressors from the pool.
			for round := 0; round < objects; round += 2 {
				for i := round; i < round+2; i++ {
					w, err := NewWriter(&bufs[i], "ndjson", compression)
					if err != nil {
						t.Fatal(err)
					}
					writers[i] = w
				}
				for n := range 50 {
					for i := round; i < round+2; i++ {
						ev := fmt.Sprintf(`{"object":%d,"n":%d}`, i, n)
						if err := writers[i].Write([]byte(ev)); err != nil {
							t.Fatal(err)
						}
						want[i] += ev + "\n"
					}
				}
				for i := round; i < round+2; i++ {
					if err := writers[i].Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := range objects {
				if got := string(decompress(t, compression, bufs[i].Bytes())); got != want[i] {
					t.Fatalf("object %d decodes to %q, want %q", i, got, want[i])
				}
			}
			if err := writers[0].Write([]byte(`{}`)); err == nil {
				t.Fatal("a closed Writer accepted a write")
			}
		})
	}
}

func TestWriterRejectsUnknown(t *testing.T) {
	if _, err := NewWriter(io.Discard, "csv", "gzip"); err == nil {
		t.Fatal("format csv accepted")
	}
	if _, err := NewWriter(io.Discard, "ndjson", "brotli"); err == nil {
		t.Fatal("compression brotli accepted")
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ format, compression, ext, ctype, cenc string }{
		{"ndjson", "gzip", ".ndjson.gz", "application/x-ndjson", "gzip"},
		{"ndjson", "zstd", ".ndjson.zst", "application/x-ndjson", "zstd"},
		{"json", "none", ".json", "application/json", ""},
	}
	for _, tt := range tests {
		if got := Extension(tt.format, tt.compression); got != tt.ext {
			t.Errorf("Extension(%s,%s) = %q, want %q", tt.format, tt.compression, got, tt.ext)
		}
		if got := ContentType(tt.format); got != tt.ctype {
			t.Errorf("ContentType(%s) = %q, want %q", tt.format, got, tt.ctype)
		}
		if got := ContentEncoding(tt.compression); got != tt.cenc {
			t.Errorf("ContentEncoding(%s) = %q, want %q", tt.compression, got, tt.cenc)
		}
	}
}
