package overlay

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// maxModule bounds one decompressed module or index file.
const maxModule = 256 << 20

// modulePlan is what --module and the driver classes decided, written
// after the files.
type modulePlan struct {
	kver         string
	modDir       string // /lib/modules/KVER
	dirPhys      string // its physical path in the root
	rootDB       *modDB
	imgHas       map[string]bool // modules the image already holds
	added        []string        // module names added, in dependency order
	queued       []queuedModule  // the same, with where they come from
	builtin      map[string]bool
	builtinPaths []string // modules.builtin, as listed
	omit         *omitter
	fwSeen       map[string]bool // firmware queued by a class
	mtime        uint32
}

// queuedModule is a module file to copy; class is nil for --module.
type queuedModule struct {
	name, src string
	class     *DriverReport
}

// modules queues the requested modules and the driver classes' with their
// dependencies, soft dependencies and firmware.
func (a *applier) modules() error {
	classes, explicit := a.opts.Drivers, a.opts.Drivers != nil
	if !explicit {
		classes = DriverClasses()
	}
	omit, err := newOmitter(a.opts.OmitModules)
	if err != nil {
		return err
	}
	if len(a.opts.Modules) == 0 && len(classes) == 0 {
		if len(a.opts.OmitModules) > 0 {
			a.report.Warnings = append(a.report.Warnings, "--omit-module without driver classes (--drivers none) has no effect")
		}
		return nil
	}
	// Without --module and --drivers, the default classes only add what
	// the root has for the image's kernel: a root of another release
	// (or a root without modules) builds as before, with one warning.
	lenient := len(a.opts.Modules) == 0 && !explicit
	flag := "--module"
	if len(a.opts.Modules) == 0 {
		flag = "--drivers " + strings.Join(classes, ",")
	}
	kver := a.opts.KVer
	if kver == "" {
		kvs := remix.KernelVersions(a.tree)
		if len(kvs) != 1 {
			if lenient {
				a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("no driver classes added: the image holds modules of %d kernel versions %q: name its kernel with --kver", len(kvs), kvs))
				return nil
			}
			return fmt.Errorf("%s: the image holds modules of %d kernel versions %q: say which with --kver", flag, len(kvs), kvs)
		}
		kver = kvs[0]
	}
	if !plainKver(kver) {
		return fmt.Errorf("--kver %q: not a kernel version", kver)
	}
	plan, err := a.loadModules(kver)
	if err != nil {
		if lenient {
			a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("no driver classes added (--drivers %s was not asked for): %v", strings.Join(classes, ","), err))
			return nil
		}
		return fmt.Errorf("%s: %w", flag, err)
	}
	plan.omit = omit
	db := plan.rootDB

	seen := map[string]bool{}
	var visit func(name, why string, required bool, cls *DriverReport) error
	visit = func(name, why string, required bool, cls *DriverReport) error {
		mods := db.lookup(name)
		if len(mods) == 0 {
			switch {
			case plan.builtin[strings.ReplaceAll(name, "-", "_")]:
				if cls == nil {
					a.report.Skipped = append(a.report.Skipped, "module "+name+" (built into the kernel)")
				}
				return nil
			case required:
				return fmt.Errorf("--module %s: unknown for kernel %s (not in %s/modules.dep, modules.alias or modules.builtin of %s)", name, kver, plan.modDir, a.root)
			}
			return nil // a soft dependency the kernel does not have
		}
		for _, m := range mods {
			if seen[m] {
				continue
			}
			seen[m] = true
			if plan.imgHas[m] {
				if cls == nil && required {
					a.report.Skipped = append(a.report.Skipped, "module "+m+" (already in the image)")
				}
				continue
			}
			if cls != nil && plan.omit != nil {
				if w := plan.omit.why(db, m); w != "" {
					cls.Omitted = append(cls.Omitted, m+" ("+w+", "+why+")")
					continue
				}
			}
			d := db.deps[db.byName[m]]
			// Soft "pre" dependencies and hard dependencies load first.
			for _, l := range db.softdep[m] {
				for _, s := range softdeps(l) {
					if err := visit(s, "soft dependency of "+m, false, cls); err != nil {
						return err
					}
				}
			}
			for _, dp := range d.deps {
				if err := visit(modName(dp), "dependency of "+m, true, cls); err != nil {
					return err
				}
			}
			plan.added = append(plan.added, m)
			src := plan.dirPhys + "/" + d.path
			plan.queued = append(plan.queued, queuedModule{name: m, src: src, class: cls})
			if cls != nil {
				cls.Added = append(cls.Added, m)
				cls.Bytes += a.fileSize(src)
			}
			a.plain = append(a.plain, plainFile{src: src, dest: plan.modDir + "/" + d.path, why: "module " + m + ": " + why})
		}
		return nil
	}
	for _, name := range a.opts.Modules {
		if err := visit(name, "module "+name, true, nil); err != nil {
			return err
		}
	}
	if len(classes) > 0 {
		if err := a.drivers(plan, classes, explicit, visit); err != nil {
			return err
		}
	}
	if err := a.moduleFirmware(plan); err != nil {
		return err
	}
	if len(plan.added) > 0 {
		a.modPlan = plan
	}
	return nil
}

// loadModules reads what depmod wrote for kver in the root, and which
// modules the image already has.
func (a *applier) loadModules(kver string) (*modulePlan, error) {
	plan, err := a.rootModules(kver)
	if err != nil {
		return nil, err
	}
	img, err := imageModDB(a.tree, kver)
	if err != nil {
		return nil, err
	}
	for _, d := range plan.rootDB.deps {
		m := modName(d.path)
		if _, ok := img.byName[m]; ok {
			plan.imgHas[m] = true
		} else if _, n, _ := a.tree.Resolve(plan.modDir+"/"+d.path, true); n != nil && n.IsRegular() {
			plan.imgHas[m] = true
		}
	}
	return plan, nil
}

// plainKver reports whether kver can name a directory of lib/modules.
func plainKver(kver string) bool {
	return kver != "" && !strings.Contains(kver, "/") && kver != "." && kver != ".."
}

// preloadedModules is the root's part of loadModules for one kernel,
// read by Prepare when the kernel is known.
type preloadedModules struct {
	kver string
	plan *modulePlan
	err  error
}

// rootModules reads what depmod wrote for kver in the root: loadModules'
// part that needs no image (Prepare's, when it knew kver).
func (a *applier) rootModules(kver string) (*modulePlan, error) {
	if p := a.preModules; p != nil && p.kver == kver {
		a.preModules = nil
		return p.plan, p.err
	}
	modDir := "/lib/modules/" + kver
	_, dirPhys, mode, err := a.res.Walk(modDir)
	if err == nil && !mode.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return nil, fmt.Errorf("no modules of kernel %s in %s (%s): %w", kver, a.root, modDir, err)
	}
	read := func(name string, required bool) ([]byte, error) {
		b, err := readBounded(a.host(dirPhys + "/" + name))
		if err != nil && (required || !errors.Is(err, fs.ErrNotExist)) {
			return nil, fmt.Errorf("%s/%s in %s: %w", modDir, name, a.root, err)
		}
		return b, nil
	}
	db := newModDB()
	b, err := read("modules.dep", true)
	if err != nil {
		return nil, err
	}
	if err := db.parseDep(modDir+"/modules.dep", b); err != nil {
		return nil, err
	}
	if b, err = read("modules.alias", false); err != nil {
		return nil, err
	}
	if db.aliases, err = parseAliasLike(modDir+"/modules.alias", b); err != nil {
		return nil, err
	}
	if b, err = read("modules.symbols", false); err != nil {
		return nil, err
	}
	if db.symbols, err = parseAliasLike(modDir+"/modules.symbols", b); err != nil {
		return nil, err
	}
	if b, err = read("modules.softdep", false); err != nil {
		return nil, err
	}
	db.parseSoftdep(b)
	if b, err = read("modules.devname", false); err != nil {
		return nil, err
	}
	db.devname = parseDevname(b)
	if b, err = read("modules.builtin", false); err != nil {
		return nil, err
	}
	plan := &modulePlan{kver: kver, modDir: modDir, dirPhys: dirPhys, rootDB: db, builtin: map[string]bool{},
		imgHas: map[string]bool{}, fwSeen: map[string]bool{}}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			plan.builtin[modName(l)] = true
			plan.builtinPaths = append(plan.builtinPaths, l)
		}
	}
	if fi, err := os.Stat(a.host(dirPhys + "/modules.dep")); err == nil {
		plan.mtime = uint32(fi.ModTime().Unix())
	}
	return plan, nil
}

// lookup finds modules by name, then by alias (as modprobe does).
func (db *modDB) lookup(name string) []string {
	n := strings.ReplaceAll(name, "-", "_")
	if _, ok := db.byName[n]; ok {
		return []string{n}
	}
	key, ok := aliasNormalize(name)
	if !ok {
		return nil
	}
	if len(db.norm) != len(db.aliases) {
		db.norm = make([]string, len(db.aliases))
		for i, al := range db.aliases {
			db.norm[i], _ = aliasNormalize(al.key)
		}
	}
	var out []string
	seen := map[string]bool{}
	for i, al := range db.aliases {
		pat := db.norm[i]
		if pat == "" {
			continue
		}
		if m, _ := path.Match(pat, key); m || pat == key {
			mod := strings.ReplaceAll(al.mod, "-", "_")
			if _, ok := db.byName[mod]; ok && !seen[mod] {
				seen[mod] = true
				out = append(out, mod)
			}
		}
	}
	return out
}

// firmware queues a firmware file named by a module, looked up where the
// kernel's loader looks (compressed variants included). It returns the
// path queued and its size; found is false when neither the root nor the
// image has it (modules name firmware for every device they drive, so the
// callers warn), and the path is "" when the image has it already.
func (a *applier) firmware(name, kver, mod string) (phys string, size int64, found bool) {
	dirs := []string{"/lib/firmware/updates/" + kver, "/lib/firmware/updates", "/lib/firmware/" + kver, "/lib/firmware"}
	exts := []string{"", ".zst", ".xz"}
	for _, dir := range dirs {
		for _, ext := range exts {
			if _, n, _ := a.tree.Resolve(dir+"/"+name+ext, true); n != nil && n.IsRegular() {
				return "", 0, true
			}
		}
	}
	for _, dir := range dirs {
		for _, ext := range exts {
			p := dir + "/" + name + ext
			links, phys, mode, err := a.res.Walk(p)
			if err != nil || !mode.IsRegular() {
				continue
			}
			why := "firmware of module " + mod
			for _, l := range links {
				a.plain = append(a.plain, plainFile{src: l.Path, dest: l.Path, why: why})
			}
			a.plain = append(a.plain, plainFile{src: phys, dest: phys, why: why})
			return phys, a.fileSize(phys), true
		}
	}
	return "", 0, false
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxModule {
		return nil, fmt.Errorf("larger than %d bytes", maxModule)
	}
	// Of the size the file has, plus one byte to see it grew: io.ReadAll
	// alone doubles its buffer and left twice each module as garbage
	// (37 MB of a build with --drivers all).
	b := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			break
		}
	}
	b, err = io.ReadAll(io.LimitReader(io.MultiReader(bytes.NewReader(b), f), maxModule+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxModule {
		return nil, fmt.Errorf("larger than %d bytes", maxModule)
	}
	return b, nil
}

// modinfoFirmware reads the firmware= entries of a module's .modinfo
// section, decompressing .ko.xz, .ko.zst and .ko.gz first.
func modinfoFirmware(p string) ([]string, error) {
	b, err := readBounded(p)
	if err != nil {
		return nil, err
	}
	var c codec.Codec
	switch {
	case strings.HasSuffix(p, ".ko.xz"):
		c = "xz"
	case strings.HasSuffix(p, ".ko.zst"):
		c = "zstd"
	case strings.HasSuffix(p, ".ko.gz"):
		c = "gzip"
	}
	if c != "" {
		r, err := codec.NewReader(c, bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return nil, err
		}
		b, err = io.ReadAll(io.LimitReader(r, maxModule+1))
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("decompressing (%s): %w", c, err)
		}
		if len(b) > maxModule {
			return nil, fmt.Errorf("larger than %d bytes decompressed", maxModule)
		}
	}
	return parseModinfo(b)
}

// parseModinfo returns the firmware names of a module's .modinfo section:
// NUL-separated "key=value" strings.
func parseModinfo(b []byte) (fw []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			fw, err = nil, fmt.Errorf("malformed ELF file: %v", p)
		}
	}()
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	s := ef.Section(".modinfo")
	if s == nil {
		return nil, nil
	}
	if s.Size > maxModule {
		return nil, fmt.Errorf(".modinfo of %d bytes", s.Size)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("firmware=")); ok && len(v) > 0 {
			fw = append(fw, string(v))
		}
	}
	return fw, nil
}

// writeModuleIndexes merges the added modules into the image's depmod
// files and rewrites its text and binary indexes.
func (a *applier) writeModuleIndexes() error {
	plan := a.modPlan
	t := a.tree
	dir := "lib/modules/" + plan.kver
	img, err := imageModDB(t, plan.kver)
	if err != nil {
		return err
	}
	root := plan.rootDB
	added := map[string]bool{}
	for _, m := range plan.added {
		if _, ok := img.byName[m]; ok {
			continue
		}
		added[m] = true
		img.addDep(root.deps[root.byName[m]])
		img.softdep[m] = root.softdep[m]
	}
	pick := func(lines []modLine, byKey bool) []modLine {
		var out []modLine
		for _, l := range lines {
			m := l.mod
			if byKey {
				m = l.key
			}
			if added[strings.ReplaceAll(m, "-", "_")] {
				out = append(out, l)
			}
		}
		return out
	}
	img.aliases = append(img.aliases, pick(root.aliases, false)...)
	img.symbols = append(img.symbols, pick(root.symbols, false)...)
	img.devname = append(img.devname, pick(root.devname, true)...)

	files := img.texts()
	bins, err := img.indexes()
	if err != nil {
		return err
	}
	for k, v := range bins {
		files[k] = v
	}
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	parent, err := t.MkdirAll(dir, 0o755, plan.mtime)
	if err != nil {
		return fmt.Errorf("image %s: %w", dir, err)
	}
	for _, name := range names {
		c := remix.JoinPath(parent, name)
		e := remix.File(c, 0o644, remix.BytesContent(files[name]))
		e.Mtime = plan.mtime
		if _, err := t.Put(e); err != nil {
			return fmt.Errorf("writing %s: %w", c, err)
		}
		a.report.Added = append(a.report.Added, Added{Path: c, Type: "file", Source: "generated", Reason: "module index of kernel " + plan.kver})
	}
	// The builtin lists do not change with the modules shipped; an image
	// without them gets the root's (same kernel).
	for _, name := range []string{"modules.builtin", "modules.builtin.bin", "modules.builtin.alias.bin", "modules.builtin.modinfo", "modules.order"} {
		if _, n, _ := t.Resolve(dir+"/"+name, true); n != nil {
			continue
		}
		src := "/lib/modules/" + plan.kver + "/" + name
		if _, phys, mode, err := a.res.Walk(src); err == nil && mode.IsRegular() {
			w := newWriter(a)
			if err := w.put(phys, "/"+dir+"/"+name, "module index of kernel "+plan.kver); err != nil {
				return err
			}
		}
	}
	return nil
}

// imageModDB reads the image's depmod text files of kver (empty when the
// image has none).
func imageModDB(t *remix.Tree, kver string) (*modDB, error) {
	dir := "lib/modules/" + kver
	readImg := func(name string) ([]byte, error) {
		_, n, err := t.Resolve(dir+"/"+name, true)
		if err != nil || n == nil || !n.IsRegular() || n.Inode.Content == nil {
			return nil, nil
		}
		rc, err := n.Inode.Content.Open()
		if err != nil {
			return nil, fmt.Errorf("image %s/%s: %w", dir, name, err)
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, maxModule))
	}
	img := newModDB()
	b, err := readImg("modules.dep")
	if err != nil {
		return nil, err
	}
	if err := img.parseDep(dir+"/modules.dep", b); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if b, err = readImg("modules.alias"); err != nil {
		return nil, err
	}
	if img.aliases, err = parseAliasLike(dir+"/modules.alias", b); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if b, err = readImg("modules.symbols"); err != nil {
		return nil, err
	}
	if img.symbols, err = parseAliasLike(dir+"/modules.symbols", b); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if b, err = readImg("modules.softdep"); err != nil {
		return nil, err
	}
	img.parseSoftdep(b)
	if b, err = readImg("modules.devname"); err != nil {
		return nil, err
	}
	img.devname = parseDevname(b)
	return img, nil
}
