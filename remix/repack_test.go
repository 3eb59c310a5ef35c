package remix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// ordinaryRewrite is what Repack must equal: Open with the input copied to
// the output, then WriteTo in Rewrite mode cutting the copy.
func ordinaryRewrite(t *testing.T, in string, opt WriteOptions) []byte {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "ordinary.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	img, err := Open(context.Background(), in, OpenOptions{CopyTo: out})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	opt.Mode, opt.Copied = Rewrite, true
	if _, err := img.WriteTo(context.Background(), out, opt); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func repackFile(t *testing.T, in string, opt WriteOptions) (string, *WriteResult) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "repacked.img")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	res, err := Repack(context.Background(), in, out, RepackOptions{Write: opt})
	if err != nil {
		t.Fatal(err)
	}
	return p, res
}

// TestRepackIsTheOrdinaryRewrite: whether Repack streams or falls back, its
// output is byte for byte the ordinary rewrite's, with every codec and with
// frames small enough to be cut between many entries; the inputs a
// generator writes stream, the others are read again.
func TestRepackIsTheOrdinaryRewrite(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 700) // spans several 4 KiB frames
	mainEntries := []ent{{Name: ".", Mode: dirMode, Mtime: 9}, {Name: "usr", Mode: dirMode}, {Name: "usr/bin", Mode: dirMode},
		{Name: "usr/lib", Mode: dirMode}, {Name: "bin", Mode: linkMode, Body: "usr/bin"}, {Name: "lib", Mode: linkMode, Body: "usr/lib"},
		{Name: "init", Mode: fileMode | 0o755, Body: "#!/bin/sh\n"}, {Name: "dev", Mode: dirMode},
		{Name: "dev/console", Mode: newc.TypeChar | 0o600, RDev: [2]uint32{5, 1}},
		{Name: "usr/bin/busybox", Mode: fileMode | 0o755, Ino: 7, Nlink: 3},
		{Name: "usr/bin/big", Mode: fileMode, Body: big},
		{Name: "usr/bin/sh", Mode: fileMode | 0o755, Ino: 7, Nlink: 3},
		{Name: "usr/bin/ls", Mode: fileMode | 0o755, Ino: 7, Nlink: 3, Body: "busybox body"},
		{Name: "lib/modules", Mode: dirMode}, // through the usr-merge link
		{Name: "lib/modules/m.ko", Mode: fileMode, Body: big + "module"},
		{Name: "empty", Mode: fileMode}, {Name: "fifo", Mode: newc.TypeFIFO | 0o644}}
	with := func(es []ent, more ...ent) []ent { return append(append([]ent{}, es...), more...) }
	early := imagetest.Archive(t, ent{Name: ".", Mode: dirMode}, ent{Name: "kernel", Mode: dirMode}, ent{Name: "kernel/x86", Mode: dirMode},
		ent{Name: "kernel/x86/microcode", Mode: dirMode}, ent{Name: "kernel/x86/microcode/AuthenticAMD.bin", Mode: fileMode, Body: "ucode"})
	z := func(es ...ent) []byte { return imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, es...)) }
	// Two zstd frames continuing one archive, as Repack itself writes.
	whole := imagetest.Archive(t, mainEntries...)
	offs := entryOffsets(t, whole)
	cut := offs[len(offs)/2]
	framed := cat(imagetest.Compress(t, codec.Zstd, whole[:cut]), imagetest.Compress(t, codec.Zstd, whole[cut:]))
	unterminated := imagetest.Archive(t, ent{Name: "kernel", Mode: dirMode})
	unterminated = unterminated[:len(unterminated)-entryLen("TRAILER!!!", 0)]

	for _, tc := range []struct {
		name     string
		image    []byte
		streamed bool
	}{
		{"main archive only", z(mainEntries...), true},
		{"early microcode then main", cat(early, z(mainEntries...)), true},
		{"no root entry", z(mainEntries[1:]...), true},
		{"several frames", cat(early, framed), true},
		{"gzip input", cat(early, imagetest.Compress(t, codec.Gzip, whole)), true},
		{"root entry late", z(with(mainEntries[1:], mainEntries[0])...), false},
		{"overriding segment", cat(early, z(mainEntries...), z(ent{Name: "init", Mode: fileMode, Body: "new"})), false},
		{"name given twice", z(with(mainEntries, ent{Name: "usr/bin/big", Mode: fileMode, Body: "again"})...), false},
		{"type changed", z(with(mainEntries, ent{Name: "empty", Mode: dirMode})...), false},
		{"hard link data on the first name", z(ent{Name: ".", Mode: dirMode}, ent{Name: "a", Mode: fileMode, Ino: 3, Nlink: 2, Body: "data"},
			ent{Name: "b", Mode: fileMode, Ino: 3, Nlink: 2}), false},
		{"fewer hard links than announced", z(ent{Name: ".", Mode: dirMode}, ent{Name: "a", Mode: fileMode, Ino: 3, Nlink: 3},
			ent{Name: "b", Mode: fileMode, Ino: 3, Nlink: 3, Body: "data"}), false},
		{"dropped entry", z(ent{Name: ".", Mode: dirMode}, ent{Name: "missing/parent", Mode: fileMode, Body: "x"}), false},
		{"uncompressed main archive", imagetest.Archive(t, mainEntries...), false},
		{"early archive continued", cat(unterminated, z(mainEntries[1:]...)), false},
	} {
		for _, c := range []codec.Codec{codec.Zstd, codec.Gzip, codec.None, codec.LZ4, codec.XZ} {
			t.Run(tc.name+"/"+string(c), func(t *testing.T) {
				in := imagetest.WriteImage(t, "initrd.img", tc.image)
				opt := WriteOptions{Compression: c, Verify: true, FrameSize: 4 << 10}
				want := ordinaryRewrite(t, in, opt)
				p, res := repackFile(t, in, opt)
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Repack wrote %d bytes that differ from the ordinary rewrite's %d", len(got), len(want))
				}
				if res.Streamed != tc.streamed {
					t.Errorf("Streamed = %v, want %v", res.Streamed, tc.streamed)
				}
				if res.Bytes != int64(len(got)) {
					t.Errorf("result says %d bytes, %d written", res.Bytes, len(got))
				}
				if err := res.Verify(context.Background(), p); err != nil {
					t.Fatal(err)
				}
				if orig, _ := os.ReadFile(in); !bytes.Equal(orig, tc.image) {
					t.Fatal("the input changed")
				}
			})
		}
	}
}

// entryLen is the size of a newc entry with no body: header, name, padding.
func entryLen(name string, body int) int {
	n := 110 + len(name) + 1
	return (n+3)&^3 + (body+3)&^3
}

// TestRepackVerifiesStreamedBodies: a streamed body is not kept, so the check
// compares a hash of what reads back with the hash taken while copying it.
func TestRepackVerifiesStreamedBodies(t *testing.T) {
	in := imagetest.WriteImage(t, "initrd.img", imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, ent{Name: ".", Mode: dirMode},
		ent{Name: "payload", Mode: fileMode, Body: strings.Repeat("rescue payload ", 100)})))
	p, res := repackFile(t, in, WriteOptions{Compression: codec.None, Verify: true})
	if !res.Streamed {
		t.Fatal("a plain archive must stream")
	}
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(good, []byte("rescue payload"))
	if i < 0 {
		t.Fatal("body not found in the output")
	}
	bad := bytes.Clone(good)
	bad[i+3] ^= 0x20
	q := filepath.Join(t.TempDir(), "bad.img")
	if err := os.WriteFile(q, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := res.Verify(context.Background(), q); err == nil || !strings.Contains(err.Error(), `"payload": content differs`) {
		t.Fatalf("Verify of a damaged body = %v", err)
	}
}

// TestRepackFailsCleanlyOnBadInput: a truncated or corrupt input is an error
// naming the file, from the streaming path as from the ordinary one.
func TestRepackFailsCleanlyOnBadInput(t *testing.T) {
	good := cat(imagetest.Archive(t, ent{Name: ".", Mode: dirMode}), imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, ent{Name: "a", Mode: fileMode, Body: strings.Repeat("x", 5000)})))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"truncated in the compressed stream", good[:len(good)-20]},
		{"junk after", cat(good, []byte("junk"))},
		{"not an initrd", []byte("hello, world")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := imagetest.WriteImage(t, "initrd.img", tc.data)
			out, err := os.Create(filepath.Join(t.TempDir(), "out.img"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			_, err = Repack(context.Background(), in, out, RepackOptions{Write: WriteOptions{Verify: true}})
			if err == nil || !strings.Contains(err.Error(), in) {
				t.Fatalf("Repack = %v, want an error naming %s", err, in)
			}
		})
	}
}

// TestRepackStopsWhenCancelled: a cancelled repack returns the context's
// error and leaves no goroutine behind (encoder workers, checker, copy).
func TestRepackStopsWhenCancelled(t *testing.T) {
	var es []ent
	es = append(es, ent{Name: ".", Mode: dirMode})
	for i := 0; i < 300; i++ {
		es = append(es, ent{Name: fmt.Sprintf("f%03d", i), Mode: fileMode, Body: strings.Repeat(fmt.Sprint(i), 3000)})
	}
	in := imagetest.WriteImage(t, "initrd.img", imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, es...)))
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	out, err := os.Create(filepath.Join(t.TempDir(), "out.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	_, err = Repack(ctx, in, out, RepackOptions{Write: WriteOptions{Verify: true, FrameSize: 4 << 10},
		Progress: func(int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Repack = %v, want context.Canceled", err)
	}
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left running, %d before", n, before)
	}
}
