package parquetenc

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// sampleEvents returns n audit events of the common SaaS shape with names
// that the default mapping sends to every class, in sequence order, with
// times that wander back and forth by up to a few seconds the way
// concurrent senders' clocks do.
func sampleEvents(n int, seed uint64) [][]byte {
	names := []string{"user.login", "user.login_failed", "user.logout", "user.created", "user.deleted",
		"role.granted", "document.created", "document.updated", "project.deleted", "billing.invoice.paid", "export.started"}
	r := rand.New(rand.NewPCG(seed, 7))
	base := int64(1764064800000)
	out := make([][]byte, n)
	for i := range out {
		ts := base + int64(i)*5 - int64(r.IntN(3000))
		user := r.IntN(5000)
		outcome := []string{"success", "failure", "denied"}[r.IntN(3)]
		out[i] = fmt.Appendf(nil, `{"timestamp":%d,"eventName":%q,"messageId":"m-%d-%d","actor":{"id":"usr_%d","email":"u%d@example.com","name":"User %d"},`+
			`"target":{"id":"obj_%d","type":"document","name":"Doc %d"},"context":{"ip":"10.%d.%d.%d","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","requestId":"req_%x"},`+
			`"location":{"city":"Lyon","country":"FR"},"outcome":%q,"version":2}`,
			ts, names[r.IntN(len(names))], seed, i, user, user, user, r.IntN(900), r.IntN(900), r.IntN(256), r.IntN(256), r.IntN(256), r.Uint32(), outcome)
	}
	return out
}

func testMapper(t testing.TB) *ocsf.Mapper {
	t.Helper()
	m, err := ocsf.New(ocsf.Config{ProductName: "Acme Cloud", VendorName: "Acme", ProductVersion: "2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeFile(t *testing.T, name string, write func(f *os.File) *Writer) (string, *Writer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := write(f)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if w.BytesWritten() != st.Size() {
		t.Errorf("BytesWritten = %d, file has %d", w.BytesWritten(), st.Size())
	}
	return path, w
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		return n
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", x, err)
		}
		return n
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

// checkLayout asserts what Security Lake requires of every object: zstd,
// pages of at most 1 MiB uncompressed, row groups within bound, rows sorted
// by time within each row group, timestamps in milliseconds.
func checkLayout(t *testing.T, path string, rowGroupBound int64, wantGroups int, res map[string][]map[string]any) {
	t.Helper()
	groups := map[int64]int64{}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res["chunks"] {
		if c["compression"] != "ZSTD" {
			t.Errorf("column %v: compression %v, want ZSTD", c["path_in_schema"], c["compression"])
		}
		rg, size := num(t, c["row_group_id"]), num(t, c["row_group_bytes"])
		groups[rg] = size
		if size > MaxRowGroupBytes || size > 2*rowGroupBound {
			t.Errorf("row group %d: %d bytes, bound %d", rg, size, rowGroupBound)
		}
		first := num(t, c["data_page_offset"])
		if c["dictionary_page_offset"] != nil {
			first = min(first, num(t, c["dictionary_page_offset"]))
		}
		pages, err := pageSizes(file, first, num(t, c["total_compressed_size"]))
		if err != nil {
			t.Fatalf("column %v: %v", c["path_in_schema"], err)
		}
		for _, p := range pages {
			if p > MaxPageBytes {
				t.Errorf("column %v: a page of %d bytes uncompressed, over %d", c["path_in_schema"], p, MaxPageBytes)
			}
		}
	}
	if len(groups) < wantGroups {
		t.Errorf("%d row groups, want at least %d (bound %d bytes)", len(groups), wantGroups, rowGroupBound)
	}
	// Rows are in file order (file_row_number); each row group is sorted.
	var rgRows []int64
	for _, g := range res["groups"] {
		rgRows = append(rgRows, num(t, g["n"]))
	}
	var times []int64
	for _, r := range res["times"] {
		times = append(times, num(t, r["ms"]))
	}
	start := 0
	for _, n := range rgRows {
		if !slices.IsSorted(times[start : start+int(n)]) {
			t.Errorf("row group at row %d is not sorted by time", start)
		}
		start += int(n)
	}
	if start != len(times) {
		t.Errorf("row groups hold %d rows, file %d", start, len(times))
	}
	for _, s := range res["time_type"] {
		if !strings.Contains(fmt.Sprint(s["logical_type"]), "MILLIS") || s["repetition_type"] != "REQUIRED" {
			t.Errorf("time column: %v, want a REQUIRED TIMESTAMP(MILLIS)", s)
		}
	}
}

func layoutQueries(path string) map[string]string {
	return map[string]string{
		"chunks":    fmt.Sprintf("SELECT * FROM parquet_metadata('%s')", path),
		"groups":    fmt.Sprintf("SELECT row_group_id, any_value(row_group_num_rows) AS n FROM parquet_metadata('%s') GROUP BY row_group_id ORDER BY row_group_id", path),
		"times":     fmt.Sprintf("SELECT epoch_ms(time) AS ms FROM read_parquet('%s', file_row_number = true) ORDER BY file_row_number", path),
		"time_type": fmt.Sprintf("SELECT * FROM parquet_schema('%s') WHERE name = 'time'", path),
	}
}

// TestOCSFParquetReadByDuckDB maps a mixed stream with the default rules,
// writes one object per class and reads each back with DuckDB.
func TestOCSFParquetReadByDuckDB(t *testing.T) {
	m := testMapper(t)
	byClass := map[int32][]ocsf.Event{}
	for i, raw := range sampleEvents(3000, 1) {
		ev, err := m.Map(raw, int64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		byClass[ev.ClassUID] = append(byClass[ev.ClassUID], ev)
	}
	for _, uid := range []int32{3002, 3001, 3004, 6003} {
		if len(byClass[uid]) == 0 {
			t.Fatalf("the sample maps no event to class %d", uid)
		}
		// In time order, so one object holds them all in several row
		// groups (TestRowsSortedAcrossObject writes them as they come).
		slices.SortStableFunc(byClass[uid], func(a, b ocsf.Event) int { return cmp.Compare(a.Time, b.Time) })
	}
	const bound = 256 << 10
	type run struct {
		name   string
		mapper *ocsf.Mapper // nil: every attribute of the class a column
		uid    int32
	}
	var runs []run
	for uid := range byClass {
		runs = append(runs, run{ocsf.ClassByUID(uid).Name, m, uid})
	}
	runs = append(runs, run{"authentication_all_columns", nil, 3002})
	for _, r := range runs {
		uid, events, c := r.uid, byClass[r.uid], ocsf.ClassByUID(r.uid)
		t.Run(r.name, func(t *testing.T) {
			path, w := writeFile(t, c.Name+".parquet", func(f *os.File) *Writer {
				w, err := NewOCSFWriter(f, r.mapper, uid, Options{RowGroupBytes: bound})
				if err != nil {
					t.Fatal(err)
				}
				for i := range events {
					if err := w.WriteOCSF(&events[i]); err != nil {
						t.Fatal(err)
					}
				}
				return w
			})
			if w.Count() != int64(len(events)) {
				t.Fatalf("Count = %d, want %d", w.Count(), len(events))
			}
			q := layoutQueries(path)
			from := fmt.Sprintf("read_parquet('%s')", path)
			q["count"] = "SELECT count(*) AS n FROM " + from
			q["ids"] = fmt.Sprintf(`SELECT count(*) FILTER (WHERE type_uid <> class_uid * 100 + activity_id) AS bad_type,
				count(*) FILTER (WHERE class_uid <> %d) AS bad_class, count(*) FILTER (WHERE category_uid <> %d) AS bad_category,
				count(*) FILTER (WHERE metadata.version <> '1.3.0') AS bad_version,
				count(*) FILTER (WHERE metadata.product.vendor_name <> 'Acme') AS bad_vendor,
				sum(epoch_ms(time)) AS time_sum FROM %s`, uid, c.CategoryUID, from)
			q["describe"] = "DESCRIBE SELECT * FROM " + from
			q["schema"] = fmt.Sprintf("SELECT name, type, repetition_type, logical_type, num_children FROM parquet_schema('%s')", path)
			s, err := Schema(r.mapper, uid)
			if err != nil {
				t.Fatal(err)
			}
			known := schemaPaths(s)
			var nullChecks []string
			for _, p := range requiredPaths(c, known) {
				nullChecks = append(nullChecks, fmt.Sprintf("count(*) FILTER (WHERE %s) AS %q", p.missing, p.name))
			}
			q["required"] = "SELECT " + strings.Join(nullChecks, ", ") + " FROM " + from
			res := duckdb(t, q)

			if n := num(t, res["count"][0]["n"]); n != int64(len(events)) {
				t.Errorf("DuckDB reads %d rows, wrote %d", n, len(events))
			}
			var timeSum int64
			for _, ev := range events {
				timeSum += ev.Time
			}
			ids := res["ids"][0]
			for _, k := range []string{"bad_type", "bad_class", "bad_category", "bad_version", "bad_vendor"} {
				if n := num(t, ids[k]); n != 0 {
					t.Errorf("%s: %d rows", k, n)
				}
			}
			if got := num(t, ids["time_sum"]); got != timeSum {
				t.Errorf("sum of times %d, wrote %d", got, timeSum)
			}
			for k, v := range res["required"][0] {
				if num(t, v) != 0 {
					t.Errorf("required %s missing in %v rows", k, v)
				}
			}
			var attrs []string
			if r.mapper != nil {
				attrs = r.mapper.Attributes(uid)
			}
			checkColumns(t, c, attrs, res["describe"], res["schema"])
			checkLayout(t, path, bound, 2, res)
		})
	}
}

type requiredPath struct{ name, missing string }

// schemaPaths are the dotted paths of every node of a Parquet schema.
func schemaPaths(s *parquet.Schema) map[string]bool {
	out := map[string]bool{}
	var walk func(n parquet.Node, prefix string)
	walk = func(n parquet.Node, prefix string) {
		for _, f := range n.Fields() {
			out[prefix+f.Name()] = true
			if !f.Leaf() {
				walk(f, prefix+f.Name()+".")
			}
		}
	}
	walk(s, "")
	return out
}

// requiredPaths are SQL conditions, one per required attribute of the class
// and of the objects below it that has a column, true where a row lacks it
// (an object's required attributes count where the object is present).
// checkColumns asserts the class's own required attributes have columns.
func requiredPaths(c *ocsf.Class, known map[string]bool) []requiredPath {
	var out []requiredPath
	var walk func(attrs []ocsf.Attribute, prefix string, parent string, depth int)
	walk = func(attrs []ocsf.Attribute, prefix, parent string, depth int) {
		for i := range attrs {
			a := &attrs[i]
			if a.Array && a.Kind == ocsf.KindObject || a.Profile != "" {
				continue
			}
			col := prefix + `"` + a.Name + `"`
			if !known[strings.ReplaceAll(col, `"`, "")] {
				continue
			}
			if a.Requirement == ocsf.Required {
				cond := col + " IS NULL"
				if parent != "" {
					cond = parent + " IS NOT NULL AND " + cond
				}
				out = append(out, requiredPath{strings.ReplaceAll(col, `"`, ""), cond})
			}
			if o := ocsf.ObjectByName(a.Object); o != nil && a.Kind == ocsf.KindObject && depth < maxObjectDepth {
				walk(o.Attributes, col+".", col, depth+1)
			}
		}
	}
	walk(c.Attributes, "", "", 0)
	return out
}

// checkColumns compares DuckDB's view of the columns with the class: each
// attribute with a column of its type, REQUIRED exactly where OCSF
// requires it, objects as structs. With attrs (the mapper's Attributes) the
// columns are those attributes' and every required attribute of the class;
// without, every attribute of the class the table carries.
func checkColumns(t *testing.T, c *ocsf.Class, attrs []string, describe, schema []map[string]any) {
	t.Helper()
	top := map[string]bool{}
	for _, p := range attrs {
		first, _, _ := strings.Cut(p, ".")
		top[first] = true
	}
	types := map[string]string{}
	for _, d := range describe {
		types[fmt.Sprint(d["column_name"])] = fmt.Sprint(d["column_type"])
	}
	rep := map[string]string{}
	for _, s := range schema {
		rep[fmt.Sprint(s["name"])] = fmt.Sprint(s["repetition_type"])
	}
	want := map[ocsf.Kind]string{
		ocsf.KindString: "VARCHAR", ocsf.KindInteger: "INTEGER", ocsf.KindLong: "BIGINT", ocsf.KindFloat: "DOUBLE",
		ocsf.KindBoolean: "BOOLEAN", ocsf.KindTimestamp: "TIMESTAMP WITH TIME ZONE", ocsf.KindJSON: "VARCHAR",
	}
	for i := range c.Attributes {
		a := &c.Attributes[i]
		got, ok := types[a.Name]
		objectArray := a.Kind == ocsf.KindObject && a.Array
		required := a.Requirement == ocsf.Required && a.Profile == "" && !objectArray
		switch {
		case attrs != nil && !top[a.Name]:
			if ok {
				t.Errorf("%s: column %s, which the mapper never fills", a.Name, got)
			}
			if required {
				t.Errorf("%s: required, not among the mapper's attributes", a.Name)
			}
			continue
		case a.Kind == ocsf.KindObject && (a.Array || ocsf.ObjectByName(a.Object) == nil):
			if ok {
				t.Errorf("%s: column %s, want none (objects not in the table)", a.Name, got)
			}
			continue
		case !ok:
			t.Errorf("%s: no column", a.Name)
			continue
		case a.Kind == ocsf.KindObject:
			if !strings.HasPrefix(got, "STRUCT(") {
				t.Errorf("%s: %s, want a STRUCT", a.Name, got)
			}
		case a.Array:
			if got != want[a.Kind]+"[]" {
				t.Errorf("%s: %s, want %s[]", a.Name, got, want[a.Kind])
			}
		case got != want[a.Kind]:
			t.Errorf("%s: %s, want %s", a.Name, got, want[a.Kind])
		}
		wantRep := "OPTIONAL"
		if a.Requirement == ocsf.Required && a.Profile == "" {
			wantRep = "REQUIRED"
		}
		if rep[a.Name] != wantRep {
			t.Errorf("%s: %s, want %s", a.Name, rep[a.Name], wantRep)
		}
	}
	for _, n := range []string{"unmapped", "raw_data", "severity", "status", "activity_name"} {
		if types[n] != "VARCHAR" {
			t.Errorf("%s: %s, want VARCHAR", n, types[n])
		}
	}
}

// TestRawParquetReadByDuckDB writes raw events and reads every field back.
func TestRawParquetReadByDuckDB(t *testing.T) {
	events := sampleEvents(20000, 2)
	var want []RawEvent
	for i, raw := range events {
		var e struct {
			Timestamp int64  `json:"timestamp"`
			EventName string `json:"eventName"`
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		want = append(want, RawEvent{Time: e.Timestamp, Name: e.EventName, MessageID: e.MessageID, Seq: int64(i + 1), JSON: raw})
	}
	const bound = 1 << 20
	path, _ := writeFile(t, "raw.parquet", func(f *os.File) *Writer {
		w, err := NewRawWriter(f, Options{RowGroupBytes: bound})
		if err != nil {
			t.Fatal(err)
		}
		// In time order, so one object holds them all in several row
		// groups (TestRowsSortedAcrossObject writes them as they come).
		for _, ev := range slices.SortedStableFunc(slices.Values(want), func(a, b RawEvent) int { return cmp.Compare(a.Time, b.Time) }) {
			if err := w.WriteRaw(ev); err != nil {
				t.Fatal(err)
			}
		}
		return w
	})
	q := layoutQueries(path)
	q["rows"] = fmt.Sprintf("SELECT seq, epoch_ms(time) AS ms, event_name, message_id, event FROM read_parquet('%s') ORDER BY seq", path)
	q["describe"] = fmt.Sprintf("DESCRIBE SELECT * FROM read_parquet('%s')", path)
	res := duckdb(t, q)
	rows := res["rows"]
	if len(rows) != len(want) {
		t.Fatalf("DuckDB reads %d rows, wrote %d", len(rows), len(want))
	}
	for i, r := range rows {
		w := want[i]
		if num(t, r["seq"]) != w.Seq || num(t, r["ms"]) != w.Time || r["event_name"] != w.Name || r["message_id"] != w.MessageID || r["event"] != string(w.JSON) {
			t.Fatalf("row %d = %v, want %+v", i, r, w)
		}
	}
	types := map[string]string{}
	for _, d := range res["describe"] {
		types[fmt.Sprint(d["column_name"])] = fmt.Sprint(d["column_type"])
	}
	wantTypes := map[string]string{"time": "TIMESTAMP WITH TIME ZONE", "event_name": "VARCHAR", "message_id": "VARCHAR", "seq": "BIGINT", "event": "VARCHAR"}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Errorf("columns %v, want %v", types, wantTypes)
	}
	checkLayout(t, path, bound, 4, res)
}

func TestWriterErrors(t *testing.T) {
	if _, err := NewOCSFWriter(nil, nil, 4001, Options{}); err == nil || !strings.Contains(err.Error(), "4001") {
		t.Errorf("unknown class: %v", err)
	}
	if _, err := NewRawWriter(nil, Options{RowGroupBytes: MaxRowGroupBytes + 1}); err == nil {
		t.Error("row group over 256 MiB accepted")
	}
	if _, err := NewRawWriter(nil, Options{PageBytes: MaxPageBytes + 1}); err == nil {
		t.Error("page over 1 MiB accepted")
	}
	m := testMapper(t)
	ev, err := m.Map(sampleEvents(1, 3)[0], 1)
	if err != nil {
		t.Fatal(err)
	}
	other := int32(3002)
	if ev.ClassUID == other {
		other = 6003
	}
	w, err := NewOCSFWriter(&countingWriter{w: discard{}}, m, other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteOCSF(&ev); err == nil || !strings.Contains(err.Error(), "class") {
		t.Errorf("event of another class: %v", err)
	}
	if err := w.WriteRaw(RawEvent{}); err == nil {
		t.Error("WriteRaw on an OCSF writer accepted")
	}
	// An event with a value the object's columns cannot hold is refused,
	// not written with the value lost.
	ev.ClassUID = 0
	w0, _ := NewOCSFWriter(&countingWriter{w: discard{}}, m, 0, Options{})
	if err := w0.WriteOCSF(&ev); err == nil || !strings.Contains(err.Error(), "no column") {
		t.Errorf("event with attributes outside the schema: %v", err)
	}
	if w0.Count() != 0 || w0.Buffered() != 0 {
		t.Errorf("refused event buffered: count %d, %d bytes", w0.Count(), w0.Buffered())
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestSchemaColumns pins the schema build for each class: leaf columns
// resolve, and the schema parquet-go reads from a written file equals it.
func TestSchemaColumns(t *testing.T) {
	m := testMapper(t)
	for _, c := range ocsf.Classes() {
		s, err := Schema(nil, c.UID)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if n := len(s.Columns()); n < 50 || n > 1000 {
			t.Errorf("%s: %d columns", c.Name, n)
		}
		pruned, err := Schema(m, c.UID)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		// One column per attribute the mapper can set; lists and scalars alike.
		if got, want := len(pruned.Columns()), len(m.Attributes(c.UID)); got != want {
			t.Errorf("%s: %d pruned columns, %d attributes", c.Name, got, want)
		}
		if _, ok := s.Lookup("time"); !ok {
			t.Errorf("%s: no time column", c.Name)
		}
	}
	_ = parquet.Ascending
}
