# initrd-remix: replaces initramfs-tools' boot script (scripts/local,
# scripts/nfs). /init sources it and calls mount_top, mount_premount and
# mountroot: instead of finding and mounting the root, hand over to the
# rescue entry point, which never returns. Every function the original
# defined is redefined so nothing storage-related can run.
local_top() { :; }
local_block() { :; }
local_premount() { :; }
local_bottom() { :; }
local_device_setup() { :; }
local_mount_root() { exec /usr/lib/initrd-remix/rescue; }
local_mount_fs() { :; }
nfs_top() { :; }
nfs_premount() { :; }
nfs_bottom() { :; }
nfs_mount_root() { exec /usr/lib/initrd-remix/rescue; }
nfs_mount_fs() { :; }
mount_top() { :; }
mount_premount() { :; }
mount_bottom() { :; }
mountroot() { exec /usr/lib/initrd-remix/rescue; }
