//! Applying an image layer (a tar stream, gzip or zstd) to a root filesystem.
