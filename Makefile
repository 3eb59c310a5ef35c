# initrd-remix: make builds the binary, make install installs it with the
# kernel-install plugin, the Debian kernel and initramfs hooks and the GRUB
# script; make uninstall removes exactly those files.
#
#   make && sudo make install                      # into /usr/local
#   make install DESTDIR=$pkgdir PREFIX=/usr       # distribution packages
#
# The binary is static (CGO_ENABLED=0): it runs in a chroot of another root.
# The hook locations are where the tools look for them, whatever PREFIX is;
# each can be overridden (KERNELINSTALLDIR, SYSCONFDIR, GRUBDIR, ...).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
PKGLIBDIR ?= $(PREFIX)/lib/initrd-remix
SYSCONFDIR ?= /etc
KERNELINSTALLDIR ?= /usr/lib/kernel/install.d
KERNELHOOKDIR ?= $(SYSCONFDIR)/kernel
INITRAMFSHOOKDIR ?= $(SYSCONFDIR)/initramfs/post-update.d
GRUBDIR ?= $(SYSCONFDIR)/grub.d
GO ?= go
GOFLAGS_BUILD ?= -trimpath
# Where `make` puts the binary (tests build elsewhere than the source tree).
BIN ?= initrd-remix
INSTALL ?= install

# Installed files: destination, then source, mode 0755; the scripts get
# @BINDIR@ and @PKGLIBDIR@ replaced.
PLUGIN = $(KERNELINSTALLDIR)/95-initrd-remix.install
POSTINST = $(KERNELHOOKDIR)/postinst.d/initrd-remix
POSTRM = $(KERNELHOOKDIR)/postrm.d/initrd-remix
POSTUPDATE = $(INITRAMFSHOOKDIR)/initrd-remix
GRUBSCRIPT = $(GRUBDIR)/15_initrd-remix
HOOKLIB = $(PKGLIBDIR)/hooks.sh

SOURCES := $(shell find cmd remix overlay strip -name '*.go' ! -name '*_test.go' 2>/dev/null) go.mod go.sum
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@PKGLIBDIR@|$(PKGLIBDIR)|g'

.PHONY: all install uninstall clean

all: $(BIN)

$(BIN): $(SOURCES)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/initrd-remix

# install_script SOURCE DESTINATION
define install_script
	$(INSTALL) -d $(DESTDIR)$(dir $(2))
	$(SUBST) $(1) >$(DESTDIR)$(2).tmp
	chmod 0755 $(DESTDIR)$(2).tmp
	mv -f $(DESTDIR)$(2).tmp $(DESTDIR)$(2)
endef

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/initrd-remix
	$(INSTALL) -d $(DESTDIR)$(PKGLIBDIR)
	$(SUBST) scripts/lib/hooks.sh >$(DESTDIR)$(HOOKLIB).tmp
	chmod 0644 $(DESTDIR)$(HOOKLIB).tmp
	mv -f $(DESTDIR)$(HOOKLIB).tmp $(DESTDIR)$(HOOKLIB)
	$(call install_script,scripts/kernel-install/95-initrd-remix.install,$(PLUGIN))
	$(call install_script,scripts/debian/postinst.d/initrd-remix,$(POSTINST))
	$(call install_script,scripts/debian/postrm.d/initrd-remix,$(POSTRM))
	$(call install_script,scripts/debian/post-update.d/initrd-remix,$(POSTUPDATE))
	$(call install_script,scripts/grub.d/15_initrd-remix,$(GRUBSCRIPT))

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/initrd-remix $(DESTDIR)$(HOOKLIB) $(DESTDIR)$(PLUGIN) \
		$(DESTDIR)$(POSTINST) $(DESTDIR)$(POSTRM) $(DESTDIR)$(POSTUPDATE) $(DESTDIR)$(GRUBSCRIPT)
	-rmdir $(DESTDIR)$(PKGLIBDIR) 2>/dev/null

clean:
	rm -f initrd-remix
