package remix

import (
	"github.com/initrd-remix/initrd-remix/remix/newc"
	"io/fs"
	"slices"
	"testing"
)

func TestConstructorsAndPredicates(t *testing.T) {
	tests := []struct {
		e                                Entry
		mode                             uint32
		dir, reg, link, dev, char, block bool
		fsMode                           fs.FileMode
	}{
		{e: File("a", 0o4755, nil), mode: newc.TypeReg | 0o4755, reg: true, fsMode: fs.ModeSetuid | 0o755},
		{e: File("a", 0o170644, nil), mode: newc.TypeReg | 0o644, reg: true, fsMode: 0o644},
		{e: Dir("d", 0o1777), mode: newc.TypeDir | 0o1777, dir: true, fsMode: fs.ModeDir | fs.ModeSticky | 0o777},
		{e: Symlink("l", "/x"), mode: newc.TypeSymlink | 0o777, link: true, fsMode: fs.ModeSymlink | 0o777},
		{e: CharDev("c", 0o600, 5, 1), mode: newc.TypeChar | 0o600, dev: true, char: true, fsMode: fs.ModeDevice | fs.ModeCharDevice | 0o600},
		{e: BlockDev("b", 0o2660, 8, 0), mode: newc.TypeBlock | 0o2660, dev: true, block: true, fsMode: fs.ModeDevice | fs.ModeSetgid | 0o660},
	}
	for _, tc := range tests {
		t.Run(tc.e.Name+TypeName(tc.mode), func(t *testing.T) {
			if tc.e.Mode != tc.mode {
				t.Fatalf("mode %#o, want %#o", tc.e.Mode, tc.mode)
			}
			tr := NewTree()
			n, err := tr.Put(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			got := []bool{n.IsDir(), n.IsRegular(), n.IsSymlink(), n.IsDevice(), n.IsCharDev(), n.IsBlockDev()}
			want := []bool{tc.dir, tc.reg, tc.link, tc.dev, tc.char, tc.block}
			if !slices.Equal(got, want) {
				t.Errorf("dir, reg, link, dev, char, block = %v, want %v", got, want)
			}
			if n.Perm() != tc.mode&0o7777 {
				t.Errorf("Perm = %#o", n.Perm())
			}
			if FileMode(tc.mode) != tc.fsMode || CpioMode(tc.fsMode) != tc.mode {
				t.Errorf("FileMode = %v, CpioMode = %#o; want %v, %#o", FileMode(tc.mode), CpioMode(tc.fsMode), tc.fsMode, tc.mode)
			}
		})
	}
	if CpioMode(fs.ModeNamedPipe|0o644) != newc.TypeFIFO|0o644 || CpioMode(fs.ModeSocket|0o755) != newc.TypeSocket|0o755 || CpioMode(fs.ModeIrregular|0o644) != newc.TypeReg|0o644 {
		t.Error("CpioMode of a fifo, socket or irregular file")
	}
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		head              string
		elf, script, prog bool
	}{
		{"\x7fELF\x02", true, false, true},
		{"#!/bin/sh", false, true, true},
		{"#", false, false, false},
		{"\x7fEL", false, false, false},
		{"", false, false, false},
	} {
		h := []byte(tc.head)
		if IsELF(h) != tc.elf || IsScript(h) != tc.script || IsProgram(h) != tc.prog {
			t.Errorf("%q: elf %v script %v program %v", tc.head, IsELF(h), IsScript(h), IsProgram(h))
		}
	}
}
