#!/bin/sh
# deps.sh [demo|check|bench|mpi|ci]: installs the Debian packages the project needs
# for one job when they are missing (apt-get; through sudo when not root), and
# says what it installs. Nothing is installed when everything is present.
set -eu
job=${1:-check}
need="gcc g++ make pkg-config libsentencepiece-dev libopenblas-openmp-dev libpcre2-dev libutf8proc-dev"
case $job in
    demo)  need="$need fortunes" ;;
    check) need="$need sentencepiece libxml2-utils" ;;
    bench) need="$need sentencepiece fasttext" ;;
    mpi)   need="$need openmpi-bin libopenmpi-dev" ;;
    ci)    need="$need sentencepiece libxml2-utils clang libclang-rt-14-dev fortunes bash-completion openmpi-bin libopenmpi-dev parallel" ;;
esac
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
    echo "deps: not root and no sudo; install them with: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
