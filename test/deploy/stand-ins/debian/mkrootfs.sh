#!/usr/bin/env bash
# Stand-in for the official image debian:bookworm-slim (the base of node:26-bookworm-slim,
# postgres:16, redis:7 and nginx:1.27), used only because this machine cannot pull; honours: a
# Debian 12 (bookworm) minbase system from Debian's own mirror, apt sources for bookworm,
# bookworm-updates and bookworm-security (the host's mirrors), security updates applied, the slim
# image's dpkg path exclusions (no docs except copyright files, no man pages, no locales) and apt
# settings (no package cache, no translations, recommends not kept by autoremove), policy-rc.d that
# keeps packages from starting services during `docker build`, CMD ["bash"].
# Extra over the official image: libatomic1 and ca-certificates (Node 26's binary needs libatomic1;
# the node stand-in removes ca-certificates again, as the official node slim image has none).
#
# usage: mkrootfs.sh ROOTFS MIRROR SECURITY_MIRROR CACHE_DIR   (root; called by ../build.sh, which
# imports the result with `docker import`)
set -euo pipefail
rootfs="$1" mirror="$2" security="$3" cache="$4"
suite=bookworm

rm -rf "$rootfs"
mkdir -p "$rootfs" "$cache"
debootstrap --variant=minbase --include=libatomic1,ca-certificates \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  --cache-dir="$cache" "$suite" "$rootfs" "$mirror" >&2

# apt sources as in the official image (deb822), from the host's mirrors
rm -f "$rootfs/etc/apt/sources.list"
cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# no service starts inside `docker build`
cat > "$rootfs/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# stand-in image: packages installed in `docker build` must not try to start their services
exit 101
EOF
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

# slim: what dpkg may not unpack from now on, and apt without caches or translations
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as debian:*-slim: no documentation, man pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' > "$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"

# security and point-release updates (the official image is rebuilt with them)
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -qq && apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade && apt-get clean' >&2
umount "$rootfs/proc"
trap - EXIT

# what the exclusions above would have kept out of the packages debootstrap unpacked
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,groff,info,linda,lintian}/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# caches, logs and host-specific files
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/tmp/* "$rootfs"/var/tmp/* \
  "$rootfs"/var/log/bootstrap.log "$rootfs"/var/log/dpkg.log "$rootfs"/var/log/alternatives.log "$rootfs"/var/log/apt/*
: > "$rootfs/etc/machine-id"
: > "$rootfs/etc/resolv.conf"
echo localhost > "$rootfs/etc/hostname"
