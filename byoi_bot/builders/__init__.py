"""Disk images built in pure Python (no qemu-img, sgdisk, mkfs.vfat): the demo's and the tests'.

`SparseImage` holds a disk as extents of data over zeros; `partition_tables` writes MBR
and GPT (512- or 4096-byte sectors), `fat` formats a FAT12/16/32 file system with files
in it, `qcow2` turns a disk into a qcow2 file (any cluster size, zlib/zstd compression,
extended L2 entries, v2/v3).
"""

from .sparse import SparseImage

__all__ = ["SparseImage"]
