"""Image and file I/O: one format table, decoding, encoding, and the one atomic writer.

    formats.py   the format table (a new format is one row)
    decode.py    files -> HxWxC uint8/uint16 arrays (`read_image`, `read_source`)
    encode.py    arrays -> file bytes in the source's format, mode and bit depth
    meta.py      what a source file was (`SourceMeta`, `probe_source`)
    png16.py     16-bit colour PNG codec (vectorised row unfilters)
    tiff.py      16-bit colour TIFF through tifffile
    atomic.py    every file write: temporary name, sync, rename (`atomic_write`, ...)
    files.py     scanning folders, reading and hashing files
    pixels.py    pixels -> float [0, 1] colour channels
    resize.py    antialiased resize and random crops
    sets.py      whole image sets for training and gap reports (`load_set`)
    source.py    the pixel limit

No JAX here; docs/architecture.md says how to add a format or a writer.
"""
