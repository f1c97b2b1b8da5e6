#!/usr/bin/env bash
# Fresh-machine check: the README's `make test` and `make demo`, run as root in a brand-new minbase
# Debian 12 root (debootstrap) that holds only make, git and ca-certificates, on a fresh clone of
# the committed HEAD. Catches a package missing from scripts/install-deps.sh, or a tool assumed.
set -euo pipefail

usage() { cat <<'EOF'
Usage: scripts/fresh-machine-test.sh [--keep] [--skip-demo] [REPO]
  Builds a `debootstrap --variant=minbase bookworm` root with only make, git and ca-certificates,
  clones REPO's committed HEAD into it (`git clone --no-local`; default: this script's repository;
  uncommitted changes are not tested), and runs `make test` then `make demo` in it with chroot.
  Needs root. Exits non-zero if any stage fails. Mounts are always removed on exit.
  --keep       keep the root afterwards (default: delete it)
  --skip-demo  stop after `make test`
Environment (the default is everything from scratch):
  FRESH_DIR=DIR          put the root in DIR/root and keep it; a rerun reuses it (no debootstrap,
                         packages already installed: quicker, but no longer a fresh machine)
  FRESH_TARBALL=F.tgz    cache debootstrap's downloads in F.tgz (made if absent, then unpacked)
  FRESH_MIRROR=URL       Debian mirror (default: the one the host's apt uses)
EOF
}
keep=0 demo=1 repo=""
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;; --skip-demo) demo=0 ;; -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;; *) repo=$a ;;
  esac
done
repo=$(git -C "${repo:-$(dirname "$0")}" rev-parse --show-toplevel)
[ "$(id -u)" -eq 0 ] || { echo "fresh-test: must run as root (debootstrap, mount, chroot)" >&2; exit 2; }

# The host apt's Debian mirror (deb822 .sources or one-line .list), and its security mirror.
host_uris() {
  { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list; } 2>/dev/null | tr -s ' \t' '\n'
}
mirror=${FRESH_MIRROR:-$(host_uris | grep -E '/debian/?$' | head -n1 || true)}
security=$(host_uris | grep -E '/debian-security/?$' | head -n1 || true)
[ -n "$mirror" ] || { echo "fresh-test: no Debian mirror in the host's apt sources; set FRESH_MIRROR" >&2; exit 2; }

# Stages: a header on entry; the time each took, and its steps (see stamp), printed at the end.
stage="" t_stage=$SECONDS t_all=$SECONDS summary=() job=""
begin() { finish; stage=$1; t_stage=$SECONDS; printf '\n==== %s  [%s]\n' "$1" "$(date +%T)"; }
finish() {
  [ -n "$stage" ] || return 0
  summary+=("$(printf '  %-14s %5d s' "$stage" $((SECONDS - t_stage)))")
  [ ! -s "$work/steps" ] || { mapfile -t -O ${#summary[@]} summary < "$work/steps"; : > "$work/steps"; }
  stage=""
}

if [ -n "${FRESH_DIR:-}" ]; then work=$(realpath -m "$FRESH_DIR"); keep=1; mkdir -p "$work"
else work=$(realpath "$(mktemp -d /var/tmp/spruce-fresh.XXXXXX)"); fi
root=$work/root
case "$root" in /?*/root) ;; *) echo "fresh-test: refusing root path '$root'" >&2; exit 2 ;; esac

mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$root" '$0 == r || index($0, r "/") == 1' | sort -r; }
kill_in_root() {  # processes we started in the root (a build, the demo's trainer), by pid
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" != "$root" ] || kill "-$1" "${p#/proc/}" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$? m; trap - EXIT INT TERM; set +e
  [ -z "$stage" ] || echo "fresh-test: stage '$stage' FAILED (exit $rc)" >&2
  kill_in_root TERM; [ -z "$job" ] || kill "$job" 2>/dev/null
  sleep 1; kill_in_root KILL; [ -z "$job" ] || wait "$job" 2>/dev/null
  finish; begin cleanup
  for m in $(mounts_under_root); do umount "$m" 2>/dev/null || umount -l "$m"; done
  # Never delete a root with anything still mounted in it (a bind of /dev would take the host's).
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-test: still mounted under $root, NOT removing it:" >&2; mounts_under_root >&2; rc=1
  elif [ "$keep" = 1 ]; then echo "fresh-test: kept $root (mounts removed)"
  else rm -rf --one-file-system "$work"; fi
  finish
  printf '\n==== fresh-machine test: %s in %d s\n' "$([ "$rc" = 0 ] && echo PASSED || echo "FAILED ($rc)")" $((SECONDS - t_all))
  printf '%s\n' "${summary[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bg() { local rc=0; "$@" & job=$!; wait "$job" || rc=$?; job=""; return "$rc"; }  # a signal is seen at once

# Prefixes each line with the seconds into the stage; with a first step's name, it also times the
# steps of `make test` by the recipe lines make echoes.
stamp() {
  local line step=$1 track=$1 t=$SECONDS
  next() { [ -z "$step" ] || printf '    %-12s %5d s\n' "$step" $((SECONDS - t)) | tee -a "$work/steps"; step=$1; t=$SECONDS; }
  while IFS= read -r line; do
    [ -z "$track" ] || case "$line" in
      "cmake -S "*) next configure ;; "cmake --build "*) next build ;; "ctest "*) next ctest ;;
    esac
    printf '[%4ds] %s\n' $((SECONDS - t_stage)) "$line"
  done
  next ""
}
# A command in the root, as root, in a clean login environment (no host variables, no locale).
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh -c "cd /root/spruce && $1" 2>&1 | stamp "$2"
}

begin debootstrap
echo "root: $root   mirror: $mirror"
command -v debootstrap >/dev/null || {
  echo "fresh-test: installing debootstrap on the host"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
reused=0
if [ -e "$root/.fresh-base" ]; then
  echo "fresh-test: reusing the root in FRESH_DIR: quicker, but not a fresh machine"; reused=1
else
  [ -z "$(mounts_under_root)" ] || { echo "fresh-test: mounts under $root" >&2; exit 1; }
  rm -rf --one-file-system "$root"   # a partial root from an interrupted run
  # shellcheck disable=SC2054  # the commas are debootstrap's
  opts=(--variant=minbase --include=make,git,ca-certificates)
  if [ -n "${FRESH_TARBALL:-}" ]; then
    tarball=$(realpath -m "$FRESH_TARBALL")
    [ -f "$tarball" ] || bg debootstrap "${opts[@]}" --make-tarball="$tarball" bookworm "$work/tarball" "$mirror"
    rm -rf --one-file-system "$work/tarball"
    opts+=(--unpack-tarball="$tarball")
  fi
  bg debootstrap "${opts[@]}" bookworm "$root" "$mirror"
  touch "$root/.fresh-base"
fi

begin setup
# apt as on a fresh install (debootstrap writes bookworm only), DNS, and the kernel filesystems.
# /dev keeps the device nodes debootstrap made; only devpts and a tmpfs /dev/shm go over it.
{ echo "deb $mirror bookworm main"; echo "deb $mirror bookworm-updates main"
  [ -z "$security" ] || echo "deb $security bookworm-security main"; } > "$root/etc/apt/sources.list"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# The network's trust anchors, like its DNS: where the network inspects TLS (as this project's
# machines' does), its CA is only in the host's bundle, and HTTPS downloads (LoadGen from PyPI)
# would fail in the root for a reason no real machine has. Added as a local CA, as an admin would.
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-network.crt"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || echo "note: update-ca-certificates failed in the root"
fi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
rm -rf --one-file-system "$root/root/spruce"
git clone -q --no-local "$repo" "$root/root/spruce"
echo "cloned $repo at $(git -C "$root/root/spruce" log -1 --format='%h %s')"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] || echo "note: $repo has uncommitted changes; they are not tested"
[ "$reused" = 0 ] || bg in_root "dpkg --configure -a" ""   # finish an install a stopped run left

begin "make test"
bg in_root "make test" install-deps
if [ "$demo" = 1 ]; then
  begin "make demo"
  bg in_root "make demo" ""
fi
finish
