# initrd-remix: runs after every other cmdline hook. The root is never
# mounted in a rescue image, so whatever root= says (or its absence) must not
# make dracut "die" (which halts the machine).
[ -n "$root" ] || root=initrd-remix-rescue
rootok=1
