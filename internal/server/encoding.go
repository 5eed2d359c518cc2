package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// acceptedEncodings are the Content-Encodings an ingest body may have.
const acceptedEncodings = "gzip, zstd or none (identity)"

// errUnsupportedEncoding marks a Content-Encoding the agent cannot decode.
var errUnsupportedEncoding = errors.New("unsupported Content-Encoding")

// zstdMaxWindow bounds the memory a zstd body may make the decoder
// allocate. 8 MiB is what RFC 8878 asks every decoder to support, and what
// zstd's own levels up to 19 use.
const zstdMaxWindow = 8 << 20

// ingestTypes are the Content-Types read as events. The body is NDJSON or
// a JSON array whatever the type says; curl's --data-binary sends
// application/x-www-form-urlencoded and is accepted for that reason.
var ingestTypes = []string{
	"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json",
	"text/plain", "application/x-www-form-urlencoded",
}

// checkContentType returns an error naming the accepted types unless the
// request's Content-Type (if any) is one of ingestTypes.
func checkContentType(header string) error {
	if header == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(header)
	if err == nil && slices.Contains(ingestTypes, mt) {
		return nil
	}
	return fmt.Errorf("Content-Type %q is not accepted: send application/x-ndjson (one JSON object per line) or application/json (an array of objects); %s are read as NDJSON too",
		header, strings.Join(ingestTypes[4:], " and "))
}

// decoder wraps body in a streaming decoder for the Content-Encoding
// header. It decodes only as much as is read, so the caller's limit on
// the decoded bytes bounds the work a compression bomb can cause.
func decoder(header string, body io.Reader) (io.ReadCloser, error) {
	coding, err := contentCoding(header)
	if err != nil {
		return nil, err
	}
	switch coding {
	case "":
		return io.NopCloser(body), nil
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("the body is not gzip (Content-Encoding: %s): %w", header, err)
		}
		return zr, nil
	default: // zstd
		zr, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
}

// contentCoding reduces a Content-Encoding header to "", "gzip" or "zstd".
func contentCoding(header string) (string, error) {
	var codings []string
	for _, c := range strings.Split(header, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "", "identity":
		case "gzip", "x-gzip":
			codings = append(codings, "gzip")
		case "zstd":
			codings = append(codings, "zstd")
		default:
			return "", fmt.Errorf("%w %q: send %s", errUnsupportedEncoding, c, acceptedEncodings)
		}
	}
	switch len(codings) {
	case 0:
		return "", nil
	case 1:
		return codings[0], nil
	default:
		return "", fmt.Errorf("%w %q, more than one coding: send one of %s", errUnsupportedEncoding, header, acceptedEncodings)
	}
}
