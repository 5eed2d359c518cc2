// Package verifytest fabricates a destination's digest chain and its data
// objects, as the agent would write them, for the tests of verify and of the
// `auditexport-agent verify` command.
package verifytest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/digest"
)

// Spec describes a chain to fabricate.
type Spec struct {
	Bucket, Prefix, Destination string
	// Start is the first hour (truncated to the hour).
	Start time.Time
	// Objects is how many data objects each hour has; its length is the
	// number of hours. 0 is an empty hour.
	Objects []int
	// RotateAt is the index of the first hour signed with the second key;
	// 0 means the first key signs every hour.
	RotateAt int
	// EventsPerObject is each object's event count (3 when 0).
	EventsPerObject int
}

// Object is a fabricated data object.
type Object struct {
	Key  string
	Body []byte
	Hour int // the index of the digest that lists it
}

// Chain is a fabricated chain: the documents, their encodings, and the
// objects they list.
type Chain struct {
	Spec Spec
	// Signers are the two keys; Keys publishes both, the first retired at
	// the rotation.
	Signers [2]ed25519.PrivateKey
	Keys    digest.KeySet
	Docs    []digest.Document
	// DigestKeys and Encoded are each hour's digest key and stored form.
	DigestKeys []string
	Encoded    []digest.Encoded
	Objects    []Object
}

// Build fabricates the chain and signs it.
func Build(spec Spec) (*Chain, error) {
	if spec.EventsPerObject == 0 {
		spec.EventsPerObject = 3
	}
	start := spec.Start.UTC().Truncate(time.Hour)
	spec.Start = start
	c := &Chain{Spec: spec}
	pubs := make([]ed25519.PublicKey, 2)
	for i := range c.Signers {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		pubs[i], c.Signers[i] = pub, priv
	}
	if spec.RotateAt > 0 {
		rotation := start.Add(time.Duration(spec.RotateAt) * time.Hour)
		c.Keys.Keys = []digest.PublicKey{
			digest.Published(pubs[0], start.Add(-24*time.Hour), &rotation),
			digest.Published(pubs[1], rotation, nil),
		}
	} else {
		c.Keys.Keys = []digest.PublicKey{digest.Published(pubs[0], start.Add(-24*time.Hour), nil)}
	}

	seq := int64(1)
	for i, n := range spec.Objects {
		hour := start.Add(time.Duration(i) * time.Hour)
		d := digest.Document{
			DestinationID: spec.Destination, Tenant: "acme", Bucket: spec.Bucket, Prefix: spec.Prefix,
			HourStart: hour, HourEnd: hour.Add(time.Hour), CreatedAt: hour.Add(time.Hour + 30*time.Second),
			FirstSeq: seq, Objects: []digest.Object{},
		}
		if i == 0 {
			d.ChainStart = &digest.ChainStart{Reason: digest.StartCreated}
		}
		for j := range n {
			o := c.object(i, hour, j, seq)
			seq = o.LastSeq + 1
			d.Objects = append(d.Objects, o)
		}
		d.LastSeq, d.NextSeq = seq-1, seq
		c.Docs = append(c.Docs, d)
		c.DigestKeys = append(c.DigestKeys, digest.Key(spec.Prefix, spec.Destination, hour))
	}
	c.Encoded = make([]digest.Encoded, len(c.Docs))
	if err := c.Reencode(0); err != nil {
		return nil, err
	}
	return c, nil
}

// object fabricates the j-th object of hour i, starting at seq.
func (c *Chain) object(i int, hour time.Time, j int, seq int64) digest.Object {
	events := int64(c.Spec.EventsPerObject)
	first, last := seq, seq+events-1
	var plain bytes.Buffer
	for s := first; s <= last; s++ {
		fmt.Fprintf(&plain, `{"messageId":"m-%d","eventName":"user.login","timestamp":%d}`+"\n", s, hour.Add(time.Duration(j)*time.Minute).UnixMilli())
	}
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	_, _ = zw.Write(plain.Bytes())
	_ = zw.Close()
	key := fmt.Sprintf("%s/user.login/%s/acme/%s/%s_%d-%d_0.ndjson.gz", c.Spec.Prefix, hour.Format("2006-01-02"), c.Spec.Destination,
		hour.Add(time.Duration(j+1)*time.Minute).Format("20060102T150405Z"), first, last)
	sum := sha256.Sum256(body.Bytes())
	c.Objects = append(c.Objects, Object{Key: key, Body: body.Bytes(), Hour: i})
	return digest.Object{
		Key: key, SHA256: hex.EncodeToString(sum[:]), Size: int64(body.Len()), Events: events,
		FirstSeq: first, LastSeq: last,
		OldestEventTime: hour.Add(time.Duration(j) * time.Minute), NewestEventTime: hour.Add(time.Duration(j) * time.Minute),
		CommittedAt: hour.Add(time.Duration(j+1) * time.Minute),
	}
}

// Signer is the key that signs hour i.
func (c *Chain) Signer(i int) ed25519.PrivateKey {
	if c.Spec.RotateAt > 0 && i >= c.Spec.RotateAt {
		return c.Signers[1]
	}
	return c.Signers[0]
}

// Reencode signs Docs[from:] again, each linked to the one before, after
// a test changed them.
func (c *Chain) Reencode(from int) error {
	for i := from; i < len(c.Docs); i++ {
		if i > 0 {
			c.Docs[i].Previous = c.Encoded[i-1].Link(c.DigestKeys[i-1])
		}
		enc, err := digest.Encode(c.Docs[i], c.Signer(i))
		if err != nil {
			return err
		}
		c.Encoded[i] = enc
	}
	return nil
}

// Upload writes every digest and object with parallel requests at once.
func (c *Chain) Upload(ctx context.Context, client *s3.Client, parallel int) error {
	type put struct {
		key  string
		body []byte
		enc  string
		ct   string
	}
	puts := make(chan put)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for p := range puts {
				if err := Put(ctx, client, c.Spec.Bucket, p.key, p.body, p.ct, p.enc); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for _, o := range c.Objects {
		select {
		case puts <- put{key: o.Key, body: o.Body, ct: "application/x-ndjson", enc: "gzip"}:
		case err = <-errs:
			break feed
		}
	}
	for i, enc := range c.Encoded {
		if err != nil {
			break
		}
		select {
		case puts <- put{key: c.DigestKeys[i], body: enc.Body, ct: digest.ContentType, enc: digest.ContentEncoding}:
		case err = <-errs:
		}
	}
	close(puts)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// Put writes one object as the agent does, with its Content-Type and
// Content-Encoding.
func Put(ctx context.Context, client *s3.Client, bucket, key string, body []byte, contentType, contentEncoding string) error {
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String(contentType)}
	if contentEncoding != "" {
		in.ContentEncoding = aws.String(contentEncoding)
	}
	if _, err := client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("PutObject %s: %w", key, err)
	}
	return nil
}
