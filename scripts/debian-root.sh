# A pristine Debian 12 root filesystem for scripts that check set-up on a
# fresh machine (fresh-machine-check.sh, deb-check.sh). Sourced, not run;
# the caller defines say() and runs as root.

debian_root_suite=bookworm
debian_root_mirrors=("deb http://deb.debian.org/debian $debian_root_suite main"
	"deb http://deb.debian.org/debian $debian_root_suite-updates main"
	"deb http://deb.debian.org/debian-security $debian_root_suite-security main")

# debian_root_cache CACHE [REFRESH]: bootstrap bookworm (only git,
# ca-certificates and sudo added) into the tarball CACHE unless it is there
# and REFRESH is not 1.
debian_root_cache() {
	local cache=$1 tmproot
	[ -f "$cache" ] && [ "${2:-}" != 1 ] && return 0
	say "bootstrapping Debian $debian_root_suite into $cache (a few minutes)"
	rm -f "$cache.tmp.tar"
	if command -v mmdebstrap >/dev/null; then
		mmdebstrap --include=git,ca-certificates,sudo "$debian_root_suite" \
			"$cache.tmp.tar" "${debian_root_mirrors[@]}"
	elif command -v debootstrap >/dev/null; then
		tmproot=$(dirname "$cache")/bootstrap.$$
		debootstrap --include=git,ca-certificates,sudo "$debian_root_suite" "$tmproot" \
			http://deb.debian.org/debian
		printf '%s\n' "${debian_root_mirrors[@]}" >"$tmproot/etc/apt/sources.list"
		tar --numeric-owner --xattrs -C "$tmproot" -cf "$cache.tmp.tar" .
		rm -rf "$tmproot"
	else
		say "needs mmdebstrap or debootstrap: apt-get install mmdebstrap"
		return 2
	fi
	mv "$cache.tmp.tar" "$cache"
}

# debian_root_enter CACHE ROOT: unpack CACHE into ROOT, with the host's DNS,
# /proc, /sys and /dev, and the CA certificates this machine added (a
# TLS-intercepting proxy's), for apt and npm (Node.js has its own bundle).
debian_root_enter() {
	local cache=$1 root=$2
	mkdir "$root"
	tar --numeric-owner --xattrs -xpf "$cache" -C "$root"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	# As an installed machine has it (else sudo warns that it cannot resolve it).
	printf '127.0.1.1\t%s\n' "$(hostname)" >>"$root/etc/hosts"
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount --rbind /dev "$root/dev"
	mount --make-rslave "$root/dev"
	if [ -n "$(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | head -n 1)" ]; then
		say "this machine's own CA certificates are installed in the root too (a TLS proxy's)"
		cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
		chroot "$root" update-ca-certificates >/dev/null 2>&1
		echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$root/etc/npmrc"
	fi
}

# debian_root_leave ROOT: kill what runs inside ROOT and unmount what is
# mounted under it; fails when something stays mounted (then keep ROOT).
debian_root_leave() {
	local root=$1 p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
	done
	sleep 1
	awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
	! awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts
}
