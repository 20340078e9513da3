package codec

import (
	"bytes"
	"os/exec"
	"testing"
)

func TestByKeyPicksTheCodecFromTheExtension(t *testing.T) {
	for key, want := range map[string]string{
		"wal_005/000000010000000000000001.lzo":                        "lzo",
		"wal_005/000000010000000000000001.lz4":                        "lz4",
		"basebackups_005/base_x/tar_partitions/part_00000000.tar.zst": "zstd",
		"wal_005/000000010000000000000001":                            "none",
	} {
		if got := ByKey(key).Name(); got != want {
			t.Errorf("ByKey(%q) = %s, want %s", key, got, want)
		}
	}
	if _, err := ByName("gzip"); err == nil {
		t.Fatal("unknown compression accepted")
	}
}

// The real command-line tools read what walden writes.
func TestOutputDecodesWithTheRealTools(t *testing.T) {
	data := bytes.Repeat([]byte("walden codec interop \x00\x01\x02"), 200000)
	for name, argv := range map[string][]string{"lz4": {"lz4", "-dc"}, "zstd": {"zstd", "-dc"}, "lzo": {"lzop", "-dc"}} {
		c, _ := ByName(name)
		var buf bytes.Buffer
		w, err := c.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = &buf
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v (is %s installed?)", name, err, argv[0])
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s: real tool decoded different bytes", name)
		}
	}
}

// walden reads what the real tools write.
func TestReadsWhatTheRealToolsWrite(t *testing.T) {
	data := bytes.Repeat([]byte("from the command line "), 100000)
	for name, argv := range map[string][]string{"lz4": {"lz4", "-1", "-c"}, "zstd": {"zstd", "-1", "-c"}, "lzo": {"lzop", "-c"}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		enc, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, _ := ByName(name)
		r, err := c.NewReader(bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestTruncatedStreamsAreErrors(t *testing.T) {
	data := bytes.Repeat([]byte("truncate me "), 100000)
	for _, c := range []Codec{LZ4{}, Zstd{}, LZO{}} {
		var buf bytes.Buffer
		w, _ := c.NewWriter(&buf)
		w.Write(data)
		w.Close()
		r, err := c.NewReader(bytes.NewReader(buf.Bytes()[:buf.Len()/2]))
		if err == nil {
			var out bytes.Buffer
			_, err = out.ReadFrom(r)
		}
		if err == nil {
			t.Errorf("%s: truncated stream read without error", c.Name())
		}
	}
}
