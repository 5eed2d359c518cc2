package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// appendOf numbers every event of tp from first, as numberEvents does when
// all are new.
func appendOf(names []string, times []int64, bodies []string, first int64) *tenantAppend {
	tp := &tenantAppend{tenantID: 7, receivedMs: 99}
	for i := range names {
		tp.names = append(tp.names, names[i])
		tp.times = append(tp.times, times[i])
		tp.messageIDs = append(tp.messageIDs, fmt.Sprintf("m%d", i))
		tp.bodies = append(tp.bodies, []byte(bodies[i]))
		tp.seqs = append(tp.seqs, first+int64(i))
	}
	return tp
}

func decodeAll(t *testing.T, c chunk) []chunkEvent {
	t.Helper()
	var out []chunkEvent
	err := decodeChunk(c.data, c.firstSeq, func(e chunkEvent) error {
		out = append(out, chunkEvent{Seq: e.Seq, TimeMs: e.TimeMs,
			MessageID: bytes.Clone(e.MessageID), Body: bytes.Clone(e.Body)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildChunksByName(t *testing.T) {
	tp := appendOf(
		[]string{"a", "b", "a", "a", "b"},
		[]int64{10, 5, -3, 10, 7},
		[]string{`{"x":1}`, `{}`, ``, `{"y":2}`, `[]`},
		100)
	tp.seqs[3] = 0 // a duplicate: not stored
	cs := buildChunks(tp)
	if len(cs) != 2 {
		t.Fatalf("%d chunks, want 2 (one per name)", len(cs))
	}
	a, b := cs[0], cs[1]
	if a.eventName != "a" || a.firstSeq != 100 || a.lastSeq != 102 || a.count != 2 || a.minTimeMs != -3 || a.maxTimeMs != 10 {
		t.Errorf("chunk a = %+v", a)
	}
	if b.eventName != "b" || b.firstSeq != 101 || b.lastSeq != 104 || b.count != 2 || b.receivedMs != 99 || b.tenantID != 7 {
		t.Errorf("chunk b = %+v", b)
	}
	got := decodeAll(t, a)
	if len(got) != 2 || got[0].Seq != 100 || got[1].Seq != 102 || got[1].TimeMs != -3 ||
		string(got[0].Body) != `{"x":1}` || string(got[1].Body) != `` || string(got[1].MessageID) != "m2" {
		t.Errorf("decoded a = %+v", got)
	}
}

func TestBuildChunksSplits(t *testing.T) {
	big := strings.Repeat("x", chunkMaxBytes+1)
	cases := []struct {
		name   string
		bodies []string
		seqs   []int64
		want   int
	}{
		{"by count", repeat(`{}`, chunkMaxEvents+1), nil, 2},
		{"by bytes", []string{big, `{}`, big}, nil, 3},
		{"by span", []string{`{}`, `{}`}, []int64{1, 1 + chunkMaxSpan}, 2},
		{"within span", []string{`{}`, `{}`}, []int64{1, chunkMaxSpan}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names := repeat("n", len(tc.bodies))
			times := make([]int64, len(tc.bodies))
			tp := appendOf(names, times, tc.bodies, 1)
			if tc.seqs != nil {
				copy(tp.seqs, tc.seqs)
			}
			cs := buildChunks(tp)
			if len(cs) != tc.want {
				t.Fatalf("%d chunks, want %d", len(cs), tc.want)
			}
			var n int64
			for _, c := range cs {
				if c.lastSeq-c.firstSeq >= chunkMaxSpan || c.count > chunkMaxEvents {
					t.Errorf("chunk %+v over a bound", c.count)
				}
				n += int64(len(decodeAll(t, c)))
			}
			if n != int64(len(tc.bodies)) {
				t.Errorf("decoded %d events, want %d", n, len(tc.bodies))
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestGroupAdder(t *testing.T) {
	hour := time.Hour.Milliseconds()
	tp := appendOf([]string{"a", "a", "a", "b"}, []int64{0, hour - 1, hour, 5}, []string{"1", "2", "3", "4"}, 1)
	cs := buildChunks(tp)
	for _, tc := range []struct {
		from, to int64
		want     []Group
	}{
		{1, 4, []Group{
			{EventName: "a", Day: time.UnixMilli(0).UTC(), Span: time.Hour, FirstSeq: 1, LastSeq: 2, Count: 2},
			{EventName: "a", Day: time.UnixMilli(hour).UTC(), Span: time.Hour, FirstSeq: 3, LastSeq: 3, Count: 1},
			{EventName: "b", Day: time.UnixMilli(0).UTC(), Span: time.Hour, FirstSeq: 4, LastSeq: 4, Count: 1},
		}},
		{2, 3, []Group{
			{EventName: "a", Day: time.UnixMilli(0).UTC(), Span: time.Hour, FirstSeq: 2, LastSeq: 2, Count: 1},
			{EventName: "a", Day: time.UnixMilli(hour).UTC(), Span: time.Hour, FirstSeq: 3, LastSeq: 3, Count: 1},
		}},
	} {
		a := newGroupAdder(tc.from, tc.to, time.Hour)
		for _, c := range cs {
			row := chunk{eventName: c.eventName, firstSeq: c.firstSeq, lastSeq: c.lastSeq,
				minTimeMs: c.minTimeMs, maxTimeMs: c.maxTimeMs, count: c.count, data: c.data}
			if err := a.add(row); err != nil {
				t.Fatal(err)
			}
		}
		got := a.result()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d..%d: groups = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestTrimChunk(t *testing.T) {
	tp := appendOf([]string{"a", "a", "a"}, []int64{1, 2, 3}, []string{"1", "2", "3"}, 10)
	c := buildChunks(tp)[0]
	kept, dropped, ok, err := trimChunk(c, 11)
	if err != nil || !ok {
		t.Fatalf("trim = %v, %v", ok, err)
	}
	if kept.firstSeq != 12 || kept.lastSeq != 12 || kept.count != 1 || len(dropped) != 2 || dropped[1].messageID != "m1" {
		t.Errorf("kept %+v, dropped %+v", kept, dropped)
	}
	if _, _, ok, _ := trimChunk(c, 12); ok {
		t.Error("trim past the last event kept something")
	}
}

func TestDecodeChunkRejectsCorruption(t *testing.T) {
	c := buildChunks(appendOf([]string{"a"}, []int64{1}, []string{"body"}, 1))[0]
	long := strings.Repeat(`{"actor":"someone","action":"something"}`, 20)
	z := buildChunks(appendOf([]string{"a", "a"}, []int64{1, 2}, []string{long, long}, 1))[0]
	if z.data[0] != chunkS2 {
		t.Fatalf("a chunk of repeated JSON was not compressed (marker %d)", z.data[0])
	}
	for _, data := range [][]byte{nil, {2}, c.data[:len(c.data)-1], append(bytes.Clone(c.data), 0),
		z.data[:len(z.data)-1], append(bytes.Clone(z.data), 0)} {
		err := decodeChunk(data, 1, func(chunkEvent) error { return nil })
		if !errors.Is(err, errChunk) {
			t.Errorf("decode %x = %v, want errChunk", data, err)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(buildChunks(appendOf([]string{"a", "a"}, []int64{1, -5}, []string{"x", "yy"}, 3))[0].data)
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Add(buildChunks(appendOf([]string{"a", "a"}, []int64{1, 2}, []string{strings.Repeat("x", 200), strings.Repeat("x", 200)}, 1))[0].data)
	f.Fuzz(func(t *testing.T, data []byte) {
		prev := int64(0)
		_ = decodeChunk(data, 1, func(e chunkEvent) error {
			if e.Seq <= prev {
				t.Fatalf("sequence %d after %d", e.Seq, prev)
			}
			prev = e.Seq
			return nil
		})
	})
}
