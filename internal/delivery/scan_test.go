package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

func TestScanAhead(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	ids := r.postLarge(300, 10<<10) // ~3 MiB: several read-ahead batches
	groups, err := r.store.GroupsBy(context.Background(), r.tenant.ID, 1, 300, nil, 24*time.Hour)
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups = %v, %v", groups, err)
	}
	var seqs []int64
	err = r.d.scanAhead(context.Background(), r.tenant.ID, groups[0], func(ev store.StoredEvent) error {
		if !strings.Contains(string(ev.Body), fmt.Sprintf("%q", ids[ev.Seq-1])) {
			return fmt.Errorf("event %d has the wrong body", ev.Seq)
		}
		seqs = append(seqs, ev.Seq)
		return nil
	})
	if err != nil || len(seqs) != 300 || seqs[0] != 1 || seqs[299] != 300 {
		t.Fatalf("read %d events (%v), want 1..300 in order", len(seqs), err)
	}

	stop := errors.New("enough")
	n := 0
	err = r.d.scanAhead(context.Background(), r.tenant.ID, groups[0], func(store.StoredEvent) error {
		n++
		if n == 150 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 150 {
		t.Fatalf("stopping early: err %v after %d events, want %v after 150", err, n, stop)
	}
}
