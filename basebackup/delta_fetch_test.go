package basebackup

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/storage"
)

func baseState(r *rand.Rand) simState {
	return simState{
		"PG_VERSION":           []byte("15\n"),
		"global/pg_control":    randBytes(r, 512),
		"backup_label":         []byte("START WAL LOCATION: 0/1000028\n"),
		"global/1262":          randBytes(r, 2*testBlk),
		"base/5/PG_VERSION":    []byte("15\n"),
		"base/5/16384":         randBytes(r, 6*testBlk),
		"base/5/16384.1":       randBytes(r, 3*testBlk),
		"base/5/16384_fsm":     randBytes(r, 3*testBlk),
		"base/5/16384_vm":      randBytes(r, testBlk),
		"base/5/16390":         randBytes(r, 4*testBlk),
		"base/5/16391":         randBytes(r, 5*testBlk),
		"base/5/16392_init":    make([]byte, 0),
		"pg_xact/0000":         randBytes(r, testBlk),
		"postgresql.auto.conf": []byte("# empty\n"),
	}
}

// mutate changes a state the way a running cluster does between backups.
func mutate(r *rand.Rand, s simState, step int) simState {
	n := cloneState(s)
	n["global/pg_control"] = randBytes(r, 512)
	n["pg_xact/0000"] = randBytes(r, testBlk)
	for _, p := range []string{"base/5/16384", "base/5/16384.1", "global/1262", "base/5/16390"} {
		d := n[p]
		for i := 0; i < 2; i++ {
			if len(d) == 0 {
				break
			}
			b := r.Intn(len(d) / testBlk)
			copy(d[b*testBlk:], randBytes(r, testBlk))
		}
	}
	n["base/5/16384_fsm"] = randBytes(r, 3*testBlk)
	switch step {
	case 1:
		n["base/5/16384"] = append(n["base/5/16384"], randBytes(r, 2*testBlk)...) // grown
		n["base/5/16390"] = n["base/5/16390"][:2*testBlk]                         // truncated
		delete(n, "base/5/16391")                                                 // dropped
		n["base/5/16400"] = randBytes(r, 2*testBlk)                               // new: whole
		n["base/5/16401"] = randBytes(r, testBlk+100)                             // not a page multiple: whole
	case 2:
		n["base/5/16390"] = append(n["base/5/16390"], randBytes(r, 3*testBlk)...) // extended again
		n["base/5/16400"] = append(n["base/5/16400"][:testBlk], randBytes(r, testBlk)...)
		n["base/5/16401"] = append(n["base/5/16401"][:testBlk+100], randBytes(r, testBlk-100)...) // now a page multiple, still whole (size was not)
		n["base/5/16391"] = randBytes(r, testBlk)                                                 // back under the same name: new, whole
	case 3:
		n["base/5/16384.1"] = n["base/5/16384.1"][:0] // emptied segment
		delete(n, "base/5/16400")
	}
	return n
}

func fetchInto(t *testing.T, st storage.Store, prefix storage.Prefix, name string, conc int) (string, error) {
	t.Helper()
	log, _ := testLogger()
	dir := filepath.Join(t.TempDir(), "pgdata")
	_, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: prefix, Log: log, PGData: dir, Backup: name, Concurrency: conc})
	return dir, err
}

// withoutWAL drops the WAL directory every restore makes.
func restored(t *testing.T, dir string) simState {
	got := readTree(t, dir)
	for p := range got {
		if strings.HasPrefix(p, "pg_wal/") {
			delete(got, p)
		}
	}
	return got
}

func TestDeltaChainRestoresTheNewestPageOfEveryBlockWhateverTheStreamOrder(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		w, st, prefix := newChainWriter(t, seed)
		w.parts = 1 + int(seed%4)
		r := rand.New(rand.NewSource(seed * 31))
		states := []simState{baseState(r)}
		bs := []*simBackup{w.push(states[0], nil)}
		for step := 1; step <= 3; step++ {
			states = append(states, mutate(r, states[step-1], step))
			bs = append(bs, w.push(states[step], bs[step-1]))
		}
		for i, b := range bs {
			for _, conc := range []int{1, 3, 16} {
				dir, err := fetchInto(t, st, prefix, b.name, conc)
				if err != nil {
					t.Fatalf("seed %d: fetch %s: %v", seed, b.name, err)
				}
				if err := sameState(states[i], restored(t, dir)); err != nil {
					t.Fatalf("seed %d, concurrency %d: restore of %s (step %d): %v", seed, conc, b.name, i, err)
				}
			}
		}
		// LATEST is the newest delta.
		dir, err := fetchInto(t, st, prefix, "LATEST", 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameState(states[3], restored(t, dir)); err != nil {
			t.Fatalf("LATEST: %v", err)
		}
	}
}

func TestDeltaChainRestoreWritesTablespaceFilesThroughTheirLinks(t *testing.T) {
	w, st, prefix := newChainWriter(t, 9)
	r := rand.New(rand.NewSource(9))
	s0 := baseState(r)
	ts := "pg_tblspc/16500/PG_15_202209061/5/16600"
	s0[ts] = randBytes(r, 4*testBlk)
	full := w.push(s0, nil)
	s1 := cloneState(s0)
	copy(s1[ts][2*testBlk:], randBytes(r, testBlk))
	d1 := w.push(s1, full)

	pgdata := filepath.Join(t.TempDir(), "pgdata")
	tsdir := filepath.Join(t.TempDir(), "ts")
	if err := os.MkdirAll(filepath.Join(pgdata, "pg_tblspc"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(tsdir, 0o700)
	if err := os.Symlink(tsdir, filepath.Join(pgdata, "pg_tblspc", "16500")); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger()
	if _, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: prefix, Log: log, PGData: pgdata, Backup: d1.name, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tsdir, "PG_15_202209061/5/16600"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(s1[ts]) {
		t.Fatal("the tablespace file does not hold the delta's pages")
	}
}

// chainFixture is a full backup and two deltas.
func chainFixture(t *testing.T) (*chainWriter, storage.Store, storage.Prefix, []*simBackup) {
	w, st, prefix := newChainWriter(t, 42)
	r := rand.New(rand.NewSource(42))
	s0 := baseState(r)
	b0 := w.push(s0, nil)
	s1 := mutate(r, s0, 1)
	b1 := w.push(s1, b0)
	b2 := w.push(mutate(r, s1, 2), b1)
	return w, st, prefix, []*simBackup{b0, b1, b2}
}

// failsBeforeWriting fetches name and wants an error mentioning all of
// words, with nothing written into the target.
func failsBeforeWriting(t *testing.T, st storage.Store, prefix storage.Prefix, name string, words ...string) {
	t.Helper()
	dir, err := fetchInto(t, st, prefix, name, 4)
	if err == nil {
		t.Fatal("the fetch succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, wd := range words {
		if !strings.Contains(msg, wd) {
			t.Errorf("error %q does not say %q", msg, wd)
		}
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		t.Errorf("the failed fetch wrote %d entries into the target (first %s)", len(ents), ents[0].Name())
	}
}

func TestDeltaWhoseParentWasDeletedFailsBeforeWritingAnything(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	if err := st.Delete(context.Background(), bs[1].key); err != nil {
		t.Fatal(err)
	}
	_ = w
	failsBeforeWriting(t, st, prefix, bs[2].name, bs[2].name, bs[1].name, "not in the store")
}

func TestDeltaWhoseParentWasReplacedFailsBeforeWritingAnything(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	// Same name, other content: e.g. a backup copied in from elsewhere.
	w.putObj(bs[0].key, []byte(strings.Replace(string(bs[0].sentinel), `"expanded_size_bytes": `, `"expanded_size_bytes": 1`, 1)))
	failsBeforeWriting(t, st, prefix, bs[2].name, bs[0].name, "SHA-256")
}

func TestDeltaWithAMissingFileListFailsBeforeWritingAnything(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	if err := st.Delete(context.Background(), FilesKey(bs[0].name, w.format.Ext())); err != nil {
		t.Fatal(err)
	}
	failsBeforeWriting(t, st, prefix, bs[2].name, bs[0].name, "file list", "missing")
}

func TestDeltaWithACorruptFileListFailsBeforeWritingAnything(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	key := FilesKey(bs[1].name, w.format.Ext())
	p := filepath.Join(w.dir, key)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	os.WriteFile(p, data, 0o600)
	failsBeforeWriting(t, st, prefix, bs[2].name, bs[1].name, "corrupt")
}

func TestDeltaWithAMissingPartitionFailsBeforeWritingAnything(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	if err := st.Delete(context.Background(), PartitionKey(bs[0].name, 1, w.format.Ext())); err != nil {
		t.Fatal(err)
	}
	failsBeforeWriting(t, st, prefix, bs[2].name, bs[0].name, "part_00000001")
}

func TestDeltaWithACorruptPartitionFailsAndLeavesNothingStartable(t *testing.T) {
	w, st, prefix, bs := chainFixture(t)
	p := filepath.Join(w.dir, PartitionKey(bs[0].name, 0, w.format.Ext()))
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff // same size: only reading it finds out
	os.WriteFile(p, data, 0o600)
	dir, err := fetchInto(t, st, prefix, bs[2].name, 4)
	if err == nil {
		t.Fatal("the fetch succeeded")
	}
	if !strings.Contains(err.Error(), "no global/pg_control") || !strings.Contains(err.Error(), bs[0].name) {
		t.Errorf("error %q", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "global", "pg_control")); err == nil {
		t.Fatal("a failed restore left global/pg_control behind")
	}
}

func TestBrokenChainIsListedBrokenAndNeverLatest(t *testing.T) {
	_, st, _, bs := chainFixture(t)
	ctx := context.Background()
	if err := st.Delete(ctx, bs[1].key); err != nil {
		t.Fatal(err)
	}
	all, err := List(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	b, ok, err := LatestUsable(ctx, st, all)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if b.Name != bs[0].name {
		t.Fatalf("LATEST is %s, want the full %s", b.Name, bs[0].name)
	}
	var broken []string
	rows, _, err := ListRows(ctx, st, "file", "", false, func(name, why string) { broken = append(broken, name+": "+why) })
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || len(broken) != 1 || !strings.Contains(broken[0], bs[2].name) || !strings.Contains(broken[0], "not in the store") {
		t.Fatalf("rows %q, broken %q", rows, broken)
	}
}

func TestBackupListShowsDeltasInWALEColumnsAndTheParentWithDetail(t *testing.T) {
	_, st, _, bs := chainFixture(t)
	ctx := context.Background()
	rows, ok, err := ListRows(ctx, st, "file", "", false, nil)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows %q", rows)
	}
	for _, r := range rows {
		if len(r) != len(ListHeader) {
			t.Fatalf("row %q has %d columns, WAL-E's %d", r, len(r), len(ListHeader))
		}
	}
	seg, off, _ := StartSegment(bs[2].name)
	want := []string{bs[2].name, "2026-01-01T03:00:00", "", seg, off, "", ""}
	if got := rows[3]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("delta row %q, want %q", got, want)
	}
	rows, _, err = ListRows(ctx, st, "file", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := rows[0]; len(h) != len(ListHeader)+1 || h[len(h)-1] != "parent" {
		t.Fatalf("detail header %q", h)
	}
	if rows[1][7] != "" || rows[2][7] != bs[0].name || rows[3][7] != bs[1].name {
		t.Fatalf("parent column: %q %q %q", rows[1][7], rows[2][7], rows[3][7])
	}
	if rows[3][5] == "" || rows[3][2] == "" {
		t.Fatalf("detail row lacks the stop and size columns: %q", rows[3])
	}
	rows, _, err = ListRows(ctx, st, "file", "LATEST", false, nil)
	if err != nil || len(rows) != 2 || rows[1][0] != bs[2].name {
		t.Fatalf("LATEST rows %q, %v", rows, err)
	}
}

func TestRestoreChoosesTheNewestDeltaBeforeTheTargetTime(t *testing.T) {
	_, st, _, bs := chainFixture(t)
	// Backups finished at 01:00, 02:00 and 03:00.
	b, err := ChooseBackup(context.Background(), st, "", Target{Time: "2026-01-01 02:30:00+00"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != bs[1].name {
		t.Fatalf("chose %s, want the first delta %s", b.Name, bs[1].name)
	}
	if err := st.Delete(context.Background(), bs[0].key); err != nil {
		t.Fatal(err)
	}
	if _, err := ChooseBackup(context.Background(), st, "", Target{Time: "2026-01-01 02:30:00+00"}); err == nil {
		t.Fatal("chose a delta whose full backup is gone")
	}
}
