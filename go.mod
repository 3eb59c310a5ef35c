module github.com/initrd-remix/initrd-remix

go 1.26.8

require (
	github.com/klauspost/compress v1.20.3
	github.com/pierrec/lz4/v4 v4.1.33
	github.com/spf13/pflag v1.1.0
	github.com/ulikunitz/xz v0.5.17
)

require github.com/cespare/xxhash/v2 v2.3.0

require (
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0 // indirect
)
