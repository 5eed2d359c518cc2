package devs3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// decodeChunked turns aws-chunked request bodies into plain ones before
// gofakes3 sees them. The SDK sends aws-chunked with a trailing checksum
// (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER) for uploads
// over HTTPS, which gofakes3 would store verbatim, chunk headers and all.
// Other clients send the signed variants. Signatures and checksums are not
// checked: nothing else in this server authenticates requests either.
func decodeChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			next.ServeHTTP(w, r)
			return
		}
		size, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil || size < 0 {
			writeError(w, http.StatusLengthRequired, s3Error{
				Code:    "MissingContentLength",
				Message: "An aws-chunked body needs a valid x-amz-decoded-content-length header.",
			})
			return
		}

		r.Body = &chunkedBody{r: bufio.NewReader(r.Body), body: r.Body}
		r.ContentLength = size
		h := r.Header
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		h.Del("X-Amz-Decoded-Content-Length")
		h.Del("X-Amz-Trailer")
		// gofakes3 keeps Content-Encoding as object metadata; aws-chunked
		// describes the request, not the object.
		if enc := withoutAWSChunked(h.Values("Content-Encoding")); enc != "" {
			h.Set("Content-Encoding", enc)
		} else {
			h.Del("Content-Encoding")
		}
		next.ServeHTTP(w, r)
	})
}

func withoutAWSChunked(values []string) string {
	var keep []string
	for _, v := range values {
		for _, enc := range strings.Split(v, ",") {
			enc = strings.TrimSpace(enc)
			if enc != "" && !strings.EqualFold(enc, "aws-chunked") {
				keep = append(keep, enc)
			}
		}
	}
	return strings.Join(keep, ",")
}

// errBadChunk reports a body that does not follow the aws-chunked format.
var errBadChunk = errors.New("malformed aws-chunked body")

// chunkedBody reads the data out of an aws-chunked body:
//
//	hex-size[;chunk-signature=...]\r\n
//	data\r\n
//	...
//	0[;chunk-signature=...]\r\n
//	[trailer-name:value\r\n ...]
//	\r\n
type chunkedBody struct {
	r        *bufio.Reader
	body     io.Closer
	left     int64 // data bytes left in the current chunk
	started  bool  // a chunk has been read, so a CRLF ends its data
	finished bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.finished {
			return 0, io.EOF
		}
		if err := c.nextChunk(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *chunkedBody) Close() error {
	return c.body.Close()
}

// nextChunk reads up to the start of the next chunk's data, or through the
// trailers after the last chunk.
func (c *chunkedBody) nextChunk() error {
	if c.started {
		if line, err := c.line(); err != nil || line != "" {
			return fmt.Errorf("%w: chunk data is not followed by CRLF", errBadChunk)
		}
	}
	c.started = true

	line, err := c.line()
	if err != nil {
		return err
	}
	sizeHex, _, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("%w: bad chunk size %q", errBadChunk, line)
	}
	if size == 0 {
		c.finished = true
		return c.skipTrailers()
	}
	c.left = size
	return nil
}

// skipTrailers reads the trailing headers up to the blank line that ends
// the body. A body that simply ends after the last chunk is accepted too.
func (c *chunkedBody) skipTrailers() error {
	for {
		line, err := c.line()
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		case line == "":
			return nil
		}
	}
}

// line reads one CRLF-terminated line without its terminator.
func (c *chunkedBody) line() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if err == io.EOF {
		return "", io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))), nil
}
