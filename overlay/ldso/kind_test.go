package ldso

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

func TestELFKind(t *testing.T) {
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	libm, err := os.ReadFile("/usr/lib/x86_64-linux-gnu/libm.so.6")
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, off int, v uint64, size int) []byte {
		c := append([]byte{}, b...)
		if size == 2 {
			binary.LittleEndian.PutUint16(c[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint64(c[off:], v)
		}
		return c
	}
	for _, tc := range []struct {
		name              string
		data              []byte
		loadable, program bool
	}{
		{"program (/bin/sh)", sh, true, true},
		{"shared library (libm)", libm, true, false},
		{"relocatable (a kernel module's type)", with(sh, 16, 1, 2), false, false},
		{"core file", with(sh, 16, 4, 2), false, false},
		{"script", []byte("#!/bin/sh\necho hi\n"), false, false},
		{"truncated header", sh[:40], false, false},
		{"program headers past the end", with(sh, 32, uint64(len(sh)), 8), true, false},
		{"huge program header table", with(sh, 56, 0xffff, 2), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, p := ELFKind(bytes.NewReader(tc.data))
			if l != tc.loadable || p != tc.program {
				t.Fatalf("ELFKind = %v, %v; want %v, %v", l, p, tc.loadable, tc.program)
			}
		})
	}
}
