#!/bin/sh
# build-deb.sh TARBALL OUTDIR: the Debian packages sbx, libpam-sbx and
# libnss-sbx from a `make dist` tarball (what `make deb` runs).
#
# The tarball becomes the .orig.tar.gz of a 3.0 (quilt) source package
# whose debian/ is the tarball's packaging/debian; dpkg-buildpackage then
# builds source and binaries, unsigned, into OUTDIR.  Extra options for
# dpkg-buildpackage come from $DPKG_BUILDPACKAGE_OPTS;
# DEB_BUILD_OPTIONS=nocheck skips the unit tests.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: build-deb.sh TARBALL OUTDIR" >&2
	exit 2
fi
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
top=$(basename "$tarball" .tar.gz)    # sbx-0.1.0
version=${top#sbx-}

for tool in dpkg-buildpackage dh dh_installnss; do
	if ! command -v "$tool" >/dev/null; then
		echo "build-deb.sh: $tool is missing: bash scripts/deps.sh deb" >&2
		exit 1
	fi
done

rm -rf "$out"
mkdir -p "$out"
cd "$out"
cp "$tarball" "sbx_$version.orig.tar.gz"
tar -xzf "sbx_$version.orig.tar.gz"
cp -R "$top/packaging/debian" "$top/debian"
cd "$top"
# The changelog names the upstream version the package is of: a tarball
# of another version needs a new changelog entry, not a mislabelled .deb.
deb_version=$(dpkg-parsechangelog -S Version)
if [ "${deb_version%-*}" != "$version" ]; then
	echo "build-deb.sh: packaging/debian/changelog is for $deb_version, the tarball is $version:" >&2
	echo "add a changelog entry (dch -v $version-1)" >&2
	exit 1
fi
# shellcheck disable=SC2086
dpkg-buildpackage -us -uc -jauto ${DPKG_BUILDPACKAGE_OPTS:-}
cd ..
rm -rf "$top"
ls -1 "$PWD"/*.deb
