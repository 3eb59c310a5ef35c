package ldso

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The ELF note systemd and others use to declare dlopen() dependencies
// (https://systemd.io/ELF_DLOPEN_METADATA/).
const (
	dlopenNoteOwner = "FDO"
	dlopenNoteType  = 0x407c0c0a
)

// Priorities of the dlopen metadata specification.
const (
	PriorityRequired    = "required"
	PriorityRecommended = "recommended"
	PrioritySuggested   = "suggested"
)

// dlopenDep is one entry of a .note.dlopen note: a feature and the sonames
// that provide it, in order of preference.
type dlopenDep struct {
	Feature     string
	Description string
	Priority    string // "required", "recommended" (the default) or "suggested"
	Sonames     []string
}

// parseDlopenNotes walks the ELF notes in b (the contents of a note section
// or PT_NOTE segment) and decodes those of the dlopen type. align is the
// section or segment alignment: notes are padded to 8 bytes only in 8-byte
// aligned areas.
func parseDlopenNotes(b []byte, bo binary.ByteOrder, align uint64) ([]dlopenDep, error) {
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	roundUp := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	var deps []dlopenDep
	for off := uint64(0); off < uint64(len(b)); {
		if uint64(len(b))-off < 12 {
			// Trailing padding shorter than a note header.
			if allZero(b[off:]) {
				break
			}
			return nil, fmt.Errorf("truncated note header at offset %d", off)
		}
		namesz := uint64(bo.Uint32(b[off:]))
		descsz := uint64(bo.Uint32(b[off+4:]))
		typ := bo.Uint32(b[off+8:])
		nameOff := off + 12
		// Padding aligns offsets within the (aligned) area, so with 8-byte
		// alignment the descriptor of a "GNU\0" note starts at 16, not 20.
		// All values stay below 2^35: no overflow.
		descOff := roundUp(nameOff + namesz)
		end := roundUp(descOff + descsz)
		if descOff+descsz > uint64(len(b)) || nameOff+namesz > uint64(len(b)) {
			return nil, fmt.Errorf("note at offset %d overruns its area", off)
		}
		name := b[nameOff : nameOff+namesz]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if typ == dlopenNoteType && string(name) == dlopenNoteOwner {
			d, err := parseDlopenJSON(b[descOff : descOff+descsz])
			if err != nil {
				return nil, fmt.Errorf("dlopen note at offset %d: %w", off, err)
			}
			deps = append(deps, d...)
		}
		if end > uint64(len(b)) {
			break
		}
		off = end
	}
	return deps, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseDlopenJSON decodes the note payload: a zero-terminated JSON array of
// objects (the current specification) or a single object (its first
// version), where "soname" is an array of alternatives or one string.
func parseDlopenJSON(desc []byte) ([]dlopenDep, error) {
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		if !allZero(desc[i:]) {
			return nil, errors.New("data after the terminating NUL")
		}
		desc = desc[:i]
	}
	desc = bytes.TrimSpace(desc)
	var raws []json.RawMessage
	if len(desc) > 0 && desc[0] == '[' {
		if err := json.Unmarshal(desc, &raws); err != nil {
			return nil, err
		}
	} else {
		raws = []json.RawMessage{desc}
	}
	deps := make([]dlopenDep, 0, len(raws))
	for _, raw := range raws {
		var e struct {
			Feature     string          `json:"feature"`
			Description string          `json:"description"`
			Priority    string          `json:"priority"`
			Soname      json.RawMessage `json:"soname"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		var sonames []string
		switch s := bytes.TrimSpace(e.Soname); {
		case len(s) == 0 || string(s) == "null":
			return nil, errors.New(`entry without "soname"`)
		case s[0] == '"':
			var one string
			if err := json.Unmarshal(s, &one); err != nil {
				return nil, err
			}
			sonames = []string{one}
		default:
			if err := json.Unmarshal(s, &sonames); err != nil {
				return nil, fmt.Errorf(`"soname": %w`, err)
			}
		}
		if len(sonames) == 0 {
			return nil, errors.New(`empty "soname"`)
		}
		for _, s := range sonames {
			if s == "" || strings.ContainsRune(s, 0) {
				return nil, fmt.Errorf("invalid soname %q", s)
			}
		}
		if e.Priority == "" {
			e.Priority = PriorityRecommended
		}
		deps = append(deps, dlopenDep{Feature: e.Feature, Description: e.Description, Priority: e.Priority, Sonames: sonames})
	}
	return deps, nil
}
