// Package ldso works out what a program needs at run time — its ELF
// interpreter and every shared library, transitively, with every symlink on
// the way — by reading files under a root directory the way glibc's dynamic
// loader (ld.so) would find them, without running anything.
//
// Why not run ldd: the root may belong to another architecture or be an
// unpacked image, ldd executes the loader of the host, and its answer for a
// program reached through a symlink differs from what happens when the
// program is executed (see "$ORIGIN" below). A rescue image that misses one
// library does not boot into a usable shell, so the rules here follow
// glibc's elf/dl-load.c and elf/dl-cache.c closely; ldd on the same root is
// the oracle in the tests.
//
// What is modelled, per process (every input is its own process, as with
// ldd; the Result is the union):
//
//   - PT_INTERP (the kernel opens it inside the root), then DT_NEEDED in
//     breadth-first order. A needed name that is already loaded — by a name
//     it was requested under, or by its DT_SONAME — is reused, as ld.so does,
//     so a library loaded through one object's RUNPATH satisfies the same
//     soname needed by another object without a search.
//   - A name containing '/' is a path (after $ORIGIN/$LIB/$PLATFORM
//     expansion) and is not searched.
//   - Search order: DT_RPATH of the loader and of each object up the chain
//     of loaders (and of the main program), unless the loader has
//     DT_RUNPATH; then the loader's own DT_RUNPATH (never inherited); then
//     /etc/ld.so.cache; then the loader's default (system) directories.
//     An object with both ignores its DT_RPATH. DF_1_NODEFLIB skips the
//     default directories and cache entries inside them. LD_LIBRARY_PATH
//     and LD_PRELOAD are environment, not part of the root, and are not
//     modelled; nor is /etc/ld.so.preload.
//   - $ORIGIN is the directory of the path an object was opened as, without
//     resolving symlinks (dl-object.c), except for the main program, whose
//     origin the loader takes from /proc/self/exe, i.e. its real path. So
//     /usr/bin/java -> /usr/lib/jvm/.../bin/java with RUNPATH $ORIGIN/../lib
//     finds libjli.so, although `ldd /usr/bin/java` reports it missing.
//     ".." in an expanded path is resolved physically (the kernel does),
//     clamped at the root.
//   - $LIB and the default directories are compiled into each glibc build.
//     Upstream uses the last component of slibdir ("lib64" on x86_64) and
//     slibdir, libdir; Debian and Ubuntu build with slibdir /lib/<triplet>,
//     expand $LIB to "lib/<triplet>" and search /lib/<triplet>,
//     /usr/lib/<triplet>, /lib, /usr/lib (ld.so --list-diagnostics on
//     Debian 12: dl_dst_lib="lib/x86_64-linux-gnu", path.system_dirs as
//     listed). A root is taken as multiarch for an ELF machine when
//     /lib/<triplet>/ or /usr/lib/<triplet>/ holds libc.so.6; Options can
//     override both.
//   - $PLATFORM is AT_PLATFORM from the kernel: "x86_64", "i686" and
//     "aarch64" are fixed for their machines; elsewhere it depends on the CPU
//     and must come from Options.Platform, otherwise a path element using it
//     is dropped, as ld.so drops elements whose token has no value.
//   - glibc-hwcaps: for every searched directory ld.so first tries
//     DIR/glibc-hwcaps/SUB/ for each subdirectory the CPU supports, best
//     first (x86-64-v4, -v3, -v2; power10, power9; z17 … z13), and the cache
//     prefers entries marked with a supported subdirectory. Which one is
//     loaded depends on the CPU the rescue image boots on, so the primary
//     answer (Result.Needs) assumes a CPU supporting all of them and
//     Result.Files also holds the libraries a less capable CPU would load,
//     down to the baseline. The legacy hwcaps subdirectories (tls, x86_64,
//     haswell, …; removed in glibc 2.37) are not searched.
//   - Candidates must be ELF of the loading process's class, byte order and
//     machine: another class or machine is skipped and the search goes on
//     (an i386 library in a multilib directory); another byte order or a
//     file that is not ELF stops the search with an error, as in ld.so's
//     open_verify. These are reported in Result.Missing with the reason.
//   - ld.so.cache: both the "glibc-ld.so.cache1.1" format (with its
//     glibc-hwcaps extension) and the old "ld.so-1.7.0" format, alone or
//     followed by the new one; entries must carry the cache flags of the
//     process's ABI (FLAG_X8664_LIB64|FLAG_ELF_LIBC6 on x86_64 …). The loader
//     never reads ld.so.conf, only the cache ldconfig built from it, so the
//     directories of <root>/etc/ld.so.conf (with include globs, resolved
//     inside the root) stand in for the cache only when the root has none.
//   - Scripts ("#!") need their interpreter and its closure; with
//     "#!/usr/bin/env NAME" also NAME from the default PATH. Other files
//     that are not ELF need nothing.
//   - dlopen()ed libraries are invisible to DT_NEEDED. The .note.dlopen ELF
//     note (systemd's format: owner "FDO", type 0x407c0c0a, a JSON array of
//     {feature, description, priority, soname[]}) is read and the first
//     soname found of each entry is added with its closure; with
//     Options.WellKnownDlopen also libgcc_s.so.1 (glibc loads it for
//     pthread_cancel and pthread_exit) and the NSS modules named in
//     <root>/etc/nsswitch.conf for programs linking libc. These are
//     recorded in Result.Optional and are never an error when absent.
//   - Symbol versions: DT_VERNEED (per library file name, the version
//     names an object needs, with VER_FLG_WEAK) and DT_VERDEF (the names it
//     defines) are read through the dynamic segment, as ld.so reads them,
//     and every object's needs are checked against the object its process
//     loaded for that file name (_dl_check_map_versions): a version not
//     defined is listed in Result.Versions, unless the need is weak or the
//     library has no DT_VERDEF. Result.VersionNeeds and Result.Defines let
//     a caller check the same needs against other copies of a library (the
//     overlay against the image's).
//
// Symlinks are resolved inside the root by hand: an absolute target starts
// again at the root, ".." stops at the root, and more than 40 links on one
// path (the kernel's limit) is an error naming the chain. Every File.Path
// in a Result is physical: no component before the last is a symlink, so a
// consumer can create its parents as directories and then write each
// symlink and file as listed.
package ldso
