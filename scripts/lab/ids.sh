# Fixed identifiers of the lab (sourced by scripts/lab.sh; also written to
# lab.env): the images bake the storage UUIDs in, the marker root carries
# MARKER_UUID, and its init prints LAB_MARKER on the console.
LUKS_UUID=4f6c0a52-7c1e-4e0b-9a3d-1b2c3d4e5f60
MD_UUID=0badc0de:11112222:33334444:55556666
SWAP_UUID=7d2a1b3c-4e5f-4a6b-8c7d-9e0f1a2b3c4d
MARKER_UUID=1c0ffee0-1234-4abc-8def-0123456789ab
LAB_MARKER=INITRD-REMIX-ROOT-REACHED
