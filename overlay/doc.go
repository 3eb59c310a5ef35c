// Package overlay adds recovery programs, files, trees and kernel modules
// from a source root (the host, "/", by default) to an initrd's tree, each
// with everything it needs at run time, so that what lands in the rescue
// image actually runs there.
//
// One code path serves every file that lands in the image, whatever brought
// it (--add, --include, a preset, a module's firmware, the target of a
// symlink): every regular file that is ELF or a "#!" script goes through
// the resolver of overlay/ldso (interpreter, DT_NEEDED, RUNPATH/RPATH with
// $ORIGIN/$LIB/$PLATFORM, the root's ld.so.cache, glibc-hwcaps,
// .note.dlopen, libgcc_s and the NSS modules), and every path, whether
// the file itself, a symlink met on the way or a parent directory, is
// written by one writer that resolves it against the image's own symlinks
// first (usr-merge): a directory is never written over a symlink, a
// symlink of the source that is a directory of the image is kept as the
// image has it (its files are reached through links placed inside it), and
// a relative link target that would point elsewhere inside the image is
// rewritten to the path it meant. Nothing from the source root is executed.
//
// A library the image already has keeps the image's copy unless an added
// program needs a symbol version only the root's compatible copy defines
// (planVersions); a preset program that cannot run on the result is left
// out, one asked for by name is an error.
//
// Apply is the entry point; the build command calls it, then verify
// (overlay/verify) before the output is renamed into place.
package overlay
