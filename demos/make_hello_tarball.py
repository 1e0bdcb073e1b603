"""Write `hello-2.10.tar.gz`, the tiny C project that `store-examples.md` builds.

It stands in for GNU Hello 2.10: a `configure` shell script (it only records the prefix), a
Makefile and one C file. The archive is reproducible: members sorted, fixed mtimes, owner and
group 0, and a gzip header with mtime 0 and no file name. Run it from anywhere:

    python demos/make_hello_tarball.py

It prints the archive's sha256, the value `store-examples.md` passes to `fetchurl`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

VERSION = "2.10"
MTIME = 1_600_000_000
"""A fixed modification time (September 2020) for every member."""

CONFIGURE = """\
#!/bin/sh
# A stand-in for autoconf's configure: it only records the installation prefix.
prefix=/usr/local
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
  esac
done
echo "PREFIX = $prefix" > config.mk
echo "configured for $prefix"
"""

MAKEFILE = """\
include config.mk

CC ?= cc

all: hello

hello: hello.c
\t$(CC) -O2 -o hello hello.c

install: hello
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello

.PHONY: all install
"""

HELLO_C = """\
#include <stdio.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "world";
    printf("Hello, %s!\\n", who);
    return 0;
}
"""

MEMBERS: dict[str, tuple[str, int]] = {
    "Makefile": (MAKEFILE, 0o644),
    "configure": (CONFIGURE, 0o755),
    "hello.c": (HELLO_C, 0o644),
}


def tarball_bytes() -> bytes:
    """The archive's bytes: the same on every run with the same zlib."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        top = tarfile.TarInfo(f"hello-{VERSION}")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, MTIME
        archive.addfile(top)
        for name in sorted(MEMBERS):
            text, mode = MEMBERS[name]
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"hello-{VERSION}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, MTIME
            archive.addfile(info, io.BytesIO(data))
    gzip_buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gzip_buffer, mtime=0, compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())
    return gzip_buffer.getvalue()


def main() -> None:
    """Write the archive beside this script and print its sha256."""
    target = Path(__file__).resolve().parent / f"hello-{VERSION}.tar.gz"
    data = tarball_bytes()
    target.write_bytes(data)
    print(f"{target.name} {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
