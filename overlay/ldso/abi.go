package ldso

import (
	"debug/elf"
	"path"
)

// abi identifies what a loader accepts: one glibc ld.so is built for one
// class, byte order and machine, plus the float ABI on machines where it is
// part of the cache flags.
type abi struct {
	class   elf.Class
	data    elf.Data
	machine elf.Machine
	// hardFloat/softFloat from e_flags, for the machines whose cache flags
	// depend on it (ARM, RISC-V, LoongArch).
	float floatABI
}

type floatABI uint8

const (
	floatUnknown floatABI = iota
	floatSoft
	floatHard
)

// Flags in the e_flags of ELF headers that select a float ABI.
const (
	efARMABIFloatSoft = 0x200
	efARMABIFloatHard = 0x400
	efRISCVFloatABI   = 0x6 // mask; 0 soft, 2 single, 4 double
	efRISCVFloatABID  = 0x4
	efLArchABIMask    = 0x7 // 1 soft, 2 single, 3 double
	efLArchABIDouble  = 0x3
	efLArchABISoft    = 0x1
)

func abiOf(h *header) abi {
	a := abi{class: h.class, data: h.data, machine: h.machine}
	switch h.machine {
	case elf.EM_ARM:
		switch {
		case h.flags&efARMABIFloatHard != 0:
			a.float = floatHard
		case h.flags&efARMABIFloatSoft != 0:
			a.float = floatSoft
		}
	case elf.EM_RISCV:
		if h.flags&efRISCVFloatABI == efRISCVFloatABID {
			a.float = floatHard
		} else {
			a.float = floatSoft
		}
	case elf.EM_LOONGARCH:
		switch h.flags & efLArchABIMask {
		case efLArchABIDouble:
			a.float = floatHard
		case efLArchABISoft:
			a.float = floatSoft
		}
	}
	return a
}

// accepts reports whether ld.so built for a would load an object with header
// h: the class and the machine must match (elf_machine_matches_host). The
// byte order is checked separately, because a mismatch there is an error,
// not a reason to keep searching.
func (a abi) accepts(h *header) bool {
	return h.class == a.class && h.machine == a.machine
}

// ld.so.cache entry flags (glibc sysdeps/generic/ldconfig.h).
const (
	flagTypeMask       = 0x00ff
	flagELF            = 0x0001
	flagELFLibc6       = 0x0003
	flagSparcLib64     = 0x0100
	flagIA64Lib64      = 0x0200
	flagX8664Lib64     = 0x0300
	flagS390Lib64      = 0x0400
	flagPowerPCLib64   = 0x0500
	flagX8664LibX32    = 0x0800
	flagARMLibHF       = 0x0900
	flagAArch64Lib64   = 0x0a00
	flagARMLibSF       = 0x0b00
	flagRISCVFloatSoft = 0x0f00
	flagRISCVFloatDbl  = 0x1000
	flagLArchFloatSoft = 0x1100
	flagLArchFloatDbl  = 0x1200
)

// cacheFlags returns the flags an ld.so of this ABI requires of a cache entry
// (_DL_CACHE_DEFAULT_ID) and whether it also accepts the generic ones
// (_dl_cache_check_flags). exact is false for machines not modelled here:
// then any ELF entry is taken and the ELF header check does the rest.
func (a abi) cacheFlags() (want int32, alsoGeneric, exact bool) {
	is64 := a.class == elf.ELFCLASS64
	switch a.machine {
	case elf.EM_X86_64:
		if is64 {
			return flagX8664Lib64 | flagELFLibc6, false, true
		}
		return flagX8664LibX32 | flagELFLibc6, false, true
	case elf.EM_AARCH64:
		return flagAArch64Lib64 | flagELFLibc6, false, true
	case elf.EM_PPC64:
		return flagPowerPCLib64 | flagELFLibc6, false, true
	case elf.EM_S390:
		if is64 {
			return flagS390Lib64 | flagELFLibc6, false, true
		}
	case elf.EM_SPARCV9:
		return flagSparcLib64 | flagELFLibc6, false, true
	case elf.EM_IA_64:
		return flagIA64Lib64 | flagELFLibc6, false, true
	case elf.EM_ARM:
		// Unmarked objects are compatible with either float ABI.
		if a.float == floatHard {
			return flagARMLibHF | flagELFLibc6, true, true
		}
		return flagARMLibSF | flagELFLibc6, true, true
	case elf.EM_RISCV:
		if a.float == floatHard {
			return flagRISCVFloatDbl | flagELFLibc6, false, true
		}
		return flagRISCVFloatSoft | flagELFLibc6, false, true
	case elf.EM_LOONGARCH:
		if a.float == floatSoft {
			return flagLArchFloatSoft | flagELFLibc6, false, true
		}
		return flagLArchFloatDbl | flagELFLibc6, false, true
	case elf.EM_MIPS:
		// The MIPS ABIs (o32, n32, n64, NaN2008) are not modelled.
		return 0, false, false
	}
	switch a.machine {
	case elf.EM_386, elf.EM_PPC, elf.EM_S390, elf.EM_SPARC, elf.EM_SPARC32PLUS,
		elf.EM_68K, elf.EM_SH, elf.EM_ALPHA, elf.EM_PARISC:
		return flagELFLibc6, true, true
	}
	return 0, false, false
}

// cacheAccepts is _dl_cache_check_flags for this ABI.
func (a abi) cacheAccepts(flags int32) bool {
	want, generic, exact := a.cacheFlags()
	if !exact {
		t := flags & flagTypeMask
		return t == flagELF || t == flagELFLibc6
	}
	return flags == want || (generic && (flags == flagELF || flags == flagELFLibc6))
}

// cacheDefault reports whether flags are exactly the ABI's default, after
// which ld.so stops looking at further entries of the same name.
func (a abi) cacheDefault(flags int32) bool {
	want, _, exact := a.cacheFlags()
	return exact && flags == want
}

// triplet is the Debian multiarch tuple of the ABI, "" when unknown.
func (a abi) triplet() string {
	is64 := a.class == elf.ELFCLASS64
	le := a.data == elf.ELFDATA2LSB
	switch a.machine {
	case elf.EM_X86_64:
		if is64 {
			return "x86_64-linux-gnu"
		}
		return "x86_64-linux-gnux32"
	case elf.EM_386:
		return "i386-linux-gnu"
	case elf.EM_AARCH64:
		if le {
			return "aarch64-linux-gnu"
		}
		return "aarch64_be-linux-gnu"
	case elf.EM_ARM:
		if a.float == floatHard {
			return "arm-linux-gnueabihf"
		}
		return "arm-linux-gnueabi"
	case elf.EM_PPC64:
		if le {
			return "powerpc64le-linux-gnu"
		}
		return "powerpc64-linux-gnu"
	case elf.EM_PPC:
		return "powerpc-linux-gnu"
	case elf.EM_S390:
		if is64 {
			return "s390x-linux-gnu"
		}
		return "s390-linux-gnu"
	case elf.EM_RISCV:
		if is64 {
			return "riscv64-linux-gnu"
		}
		return "riscv32-linux-gnu"
	case elf.EM_LOONGARCH:
		return "loongarch64-linux-gnu"
	case elf.EM_MIPS:
		switch {
		case is64 && le:
			return "mips64el-linux-gnuabi64"
		case is64:
			return "mips64-linux-gnuabi64"
		case le:
			return "mipsel-linux-gnu"
		}
		return "mips-linux-gnu"
	case elf.EM_SPARCV9:
		return "sparc64-linux-gnu"
	case elf.EM_ALPHA:
		return "alpha-linux-gnu"
	case elf.EM_PARISC:
		return "hppa-linux-gnu"
	case elf.EM_68K:
		return "m68k-linux-gnu"
	case elf.EM_SH:
		return "sh4-linux-gnu"
	case elf.EM_IA_64:
		return "ia64-linux-gnu"
	}
	return ""
}

// upstreamSlibdir is glibc's slibdir for the ABI when configured with
// --prefix=/usr and no Debian patches (sysdeps/unix/sysv/linux/*/configure).
func (a abi) upstreamSlibdir() string {
	is64 := a.class == elf.ELFCLASS64
	switch a.machine {
	case elf.EM_X86_64:
		if is64 {
			return "/lib64"
		}
		return "/libx32"
	case elf.EM_AARCH64, elf.EM_PPC64, elf.EM_SPARCV9, elf.EM_LOONGARCH:
		return "/lib64"
	case elf.EM_S390:
		if is64 {
			return "/lib64"
		}
	case elf.EM_RISCV:
		abiDir := "lp64"
		if !is64 {
			abiDir = "ilp32"
		}
		if a.float == floatHard {
			abiDir += "d"
		}
		if is64 {
			return "/lib64/" + abiDir
		}
		return "/lib32/" + abiDir
	case elf.EM_MIPS:
		if is64 {
			return "/lib64"
		}
	}
	return "/lib"
}

// platform is AT_PLATFORM where the kernel fixes it for the machine.
func (a abi) platform() string {
	switch a.machine {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_386:
		return "i686"
	case elf.EM_AARCH64:
		if a.data == elf.ELFDATA2LSB {
			return "aarch64"
		}
		return "aarch64_be"
	}
	return ""
}

// hwcapsSubdirs lists the glibc-hwcaps subdirectories ld.so of this ABI
// knows, best first (sysdeps/*/dl-hwcaps-subdirs.c).
func (a abi) hwcapsSubdirs() []string {
	switch {
	case a.machine == elf.EM_X86_64 && a.class == elf.ELFCLASS64:
		return []string{"x86-64-v4", "x86-64-v3", "x86-64-v2"}
	case a.machine == elf.EM_PPC64 && a.data == elf.ELFDATA2LSB:
		return []string{"power10", "power9"}
	case a.machine == elf.EM_S390 && a.class == elf.ELFCLASS64:
		return []string{"z17", "z16", "z15", "z14", "z13"}
	}
	return nil
}

// abiConfig is what the loader of one ABI has compiled in.
type abiConfig struct {
	abi        abi
	lib        string   // $LIB
	platform   string   // $PLATFORM, "" when unknown
	systemDirs []string // with a trailing slash, as ld.so keeps them
	hwcaps     []string // glibc-hwcaps subdirectories, best first
}

// configFor derives the loader configuration for an ABI from the root's
// layout and the options; see the package documentation for the evidence.
func (c *closure) configFor(a abi) *abiConfig {
	if cfg, ok := c.configs[a]; ok {
		return cfg
	}
	o := c.r.opts
	cfg := &abiConfig{abi: a, platform: o.Platform, hwcaps: a.hwcapsSubdirs()}
	if cfg.platform == "" {
		cfg.platform = a.platform()
	}
	var dirs []string
	if t := a.triplet(); t != "" && (c.isFile("/lib/"+t+"/libc.so.6") || c.isFile("/usr/lib/"+t+"/libc.so.6")) {
		cfg.lib = "lib/" + t
		dirs = []string{"/lib/" + t, "/usr/lib/" + t, "/lib", "/usr/lib"}
	} else {
		s := a.upstreamSlibdir()
		cfg.lib = path.Base(s)
		dirs = []string{s, "/usr" + s}
	}
	if o.Lib != "" {
		cfg.lib = o.Lib
	}
	if o.SystemDirs != nil {
		dirs = o.SystemDirs
	}
	for _, d := range dirs {
		cfg.systemDirs = appendUnique(cfg.systemDirs, dirSlash(d))
	}
	c.configs[a] = cfg
	return cfg
}

// dirSlash normalises a search directory the way fillin_rpath does: trailing
// slashes removed, then exactly one added.
func dirSlash(d string) string {
	for len(d) > 1 && d[len(d)-1] == '/' {
		d = d[:len(d)-1]
	}
	if d[len(d)-1] != '/' {
		d += "/"
	}
	return d
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
