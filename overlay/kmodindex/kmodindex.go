// Package kmodindex writes the binary indexes kmod (modprobe, udev's kmod
// builtin) reads instead of the text files depmod writes beside them:
// modules.dep.bin, modules.alias.bin, modules.symbols.bin,
// modules.builtin.bin. kmod never reads modules.dep or modules.alias as
// text, so an image whose modules change needs these rebuilt; doing it in Go
// avoids running the source root's depmod, which may be built for another
// architecture.
//
// Format (kmod's libkmod-index.c, version 2.1, big-endian): a header
// (magic 0xB007F457, version 0x00020001, offset of the root node) and a
// radix trie of nodes. A node's offset carries flags in its top bits:
// 0x80000000 the node has a prefix (a NUL-terminated string), 0x20000000
// children (first and last child byte, then one offset per byte in between,
// 0 for none), 0x40000000 values (a count, then for each a priority and a
// NUL-terminated string, in ascending priority). Keys are 7-bit.
package kmodindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

const (
	magic       = 0xB007F457
	version     = 0x00020001
	flagPrefix  = 0x80000000
	flagValues  = 0x40000000
	flagChilds  = 0x20000000
	maxOffset   = 0x0FFFFFFF
	headerBytes = 12
)

// Value is one value of a key; lower priorities come first.
type Value struct {
	Priority uint32
	Text     string
}

// Index is a set of keys with values, written as one kmod index.
type Index struct {
	root *node
}

type node struct {
	prefix   string
	children map[byte]*node
	values   []Value
}

// New returns an empty index.
func New() *Index { return &Index{root: &node{}} }

// Add adds a value to key. Keys and values must not hold NUL; keys must be
// 7-bit, as kmod's trie has 128 children per node.
func (ix *Index) Add(key string, v Value) error {
	for i := 0; i < len(key); i++ {
		if key[i] == 0 || key[i] >= 128 {
			return fmt.Errorf("index key %q: byte %#x at %d is not allowed", key, key[i], i)
		}
	}
	if bytes.IndexByte([]byte(v.Text), 0) >= 0 {
		return fmt.Errorf("index value %q holds a NUL byte", v.Text)
	}
	n := ix.root
	for {
		// Split the node where key and its prefix part.
		i := 0
		for i < len(n.prefix) && i < len(key) && n.prefix[i] == key[i] {
			i++
		}
		if i < len(n.prefix) {
			child := &node{prefix: n.prefix[i+1:], children: n.children, values: n.values}
			n.children = map[byte]*node{n.prefix[i]: child}
			n.values = nil
			n.prefix = n.prefix[:i]
		}
		key = key[i:]
		if key == "" {
			n.values = append(n.values, v)
			// Stable: equal priorities keep insertion order, as depmod's
			// index_add_value does.
			sort.SliceStable(n.values, func(a, b int) bool { return n.values[a].Priority < n.values[b].Priority })
			return nil
		}
		c := key[0]
		next := n.children[c]
		if next == nil {
			if n.children == nil {
				n.children = map[byte]*node{}
			}
			n.children[c] = &node{prefix: key[1:], values: []Value{v}}
			return nil
		}
		n, key = next, key[1:]
	}
}

// WriteTo writes the index.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, headerBytes))
	root, err := writeNode(&buf, ix.root)
	if err != nil {
		return 0, err
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[0:], magic)
	binary.BigEndian.PutUint32(b[4:], version)
	binary.BigEndian.PutUint32(b[8:], root)
	n, err := w.Write(b)
	return int64(n), err
}

// Bytes returns the written index.
func (ix *Index) Bytes() ([]byte, error) {
	var b bytes.Buffer
	if _, err := ix.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeNode writes the children first (their offsets go into the node),
// then the node, and returns the node's offset with its flags.
func writeNode(buf *bytes.Buffer, n *node) (uint32, error) {
	var first, last byte
	var offs []uint32
	if len(n.children) > 0 {
		keys := make([]int, 0, len(n.children))
		for c := range n.children {
			keys = append(keys, int(c))
		}
		sort.Ints(keys)
		first, last = byte(keys[0]), byte(keys[len(keys)-1])
		offs = make([]uint32, int(last)-int(first)+1)
		for _, c := range keys {
			off, err := writeNode(buf, n.children[byte(c)])
			if err != nil {
				return 0, err
			}
			offs[c-int(first)] = off
		}
	}
	off := buf.Len()
	if off > maxOffset {
		return 0, fmt.Errorf("index larger than %d bytes", maxOffset)
	}
	flags := uint32(0)
	if n.prefix != "" {
		flags |= flagPrefix
		buf.WriteString(n.prefix)
		buf.WriteByte(0)
	}
	var word [4]byte
	if len(offs) > 0 {
		flags |= flagChilds
		buf.WriteByte(first)
		buf.WriteByte(last)
		for _, o := range offs {
			binary.BigEndian.PutUint32(word[:], o)
			buf.Write(word[:])
		}
	}
	if len(n.values) > 0 {
		flags |= flagValues
		binary.BigEndian.PutUint32(word[:], uint32(len(n.values)))
		buf.Write(word[:])
		for _, v := range n.values {
			binary.BigEndian.PutUint32(word[:], v.Priority)
			buf.Write(word[:])
			buf.WriteString(v.Text)
			buf.WriteByte(0)
		}
	}
	return uint32(off) | flags, nil
}
