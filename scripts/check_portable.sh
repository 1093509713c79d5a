#!/usr/bin/env bash
# The release binary on other CPUs than the build machine's, emulated by qemu's user-mode
# emulator, which does not emulate AVX-512 at all (any AVX-512 instruction ends the run with
# SIGILL):
# - Haswell (AVX2, FMA, F16C: the build's target level, x86-64-v3): it starts, its kernels run
#   at the AVX2 level by themselves (`timings.cpu_level`, from the one place that decides it for
#   every kernel), and it finds the sentence-embedding model's key sentence as the native run
#   does;
# - Sandy Bridge (AVX, no AVX2) and Westmere (no AVX): it says which CPU it needs and exits 1,
#   instead of dying on an illegal instruction;
# and lists the functions of the binary that hold AVX-512 instructions: each must be one that
# the run-time dispatch reaches only on an AVX-512 CPU.
#
# With --translate, and on an AVX-512 machine, it also translates a sentence emulated with the
# 1.5B model, to the very text a native run held to AVX2 gives (PRECIS_KQUANT=avx2; the AVX-512
# decoding kernels sum in another order, so the native best level's text may differ). That takes
# about 15 minutes (109 prompt tokens, each AVX2 instruction emulated), so CI leaves it out: the
# AVX2 kernels themselves are run natively there (scripts/test.sh, PRECIS_KQUANT=avx2), and the
# level they are picked at is checked above. Run it before a release.
#
#   scripts/check_portable.sh [--translate] [PRECIS]     (default: target/release/precis)
#
# Needs qemu-user (Debian's package; installed here when missing and run as root), and
# all-minilm-l6-v2 (and for --translate qwen2.5-coder-1.5b-instruct) in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
translate=false
if [[ ${1:-} == --translate ]]; then
    translate=true
    shift
fi
precis=${1:-${CARGO_TARGET_DIR:-target}/release/precis}
if ! command -v qemu-x86_64 >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y -qq qemu-user >/dev/null
    else
        echo "check_portable: needs qemu-x86_64 (Debian: apt-get install qemu-user)" >&2
        exit 1
    fi
fi
# qemu warns about CPU flags it cannot emulate (TSX, x2apic, ...): noise here.
emulate() {
    local cpu=$1
    shift
    qemu-x86_64 -cpu "$cpu" "$@" 2> >(grep -v "TCG doesn't support" >&2)
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "== Haswell (AVX2, no AVX-512): starts, runs its kernels at the AVX2 level, embeds as natively"
emulate Haswell "$precis" --version
printf 'Gary Locke will be confirmed as manager on Friday. The club said so in a statement. He replaced Allan Johnston in February.\n' >"$dir/en.txt"
args=(--offline -q summarize "$dir/en.txt" --no-abstractive --sentences 1 --format json)
"$precis" "${args[@]}" >"$dir/native.json"
emulate Haswell "$precis" "${args[@]}" >"$dir/emulated.json"
python3 - "$dir/native.json" "$dir/emulated.json" <<'PY'
import json, sys
native, emulated = (json.load(open(path)) for path in sys.argv[1:])
def key(report):
    return [s["text"] for s in report["summary"]["extractive"]]
print(f"cpu level: native {native['timings']['cpu_level']}, emulated {emulated['timings']['cpu_level']}")
print(f"key sentence: {key(emulated)}")
if emulated["timings"]["cpu_level"] != "avx2":
    sys.exit("check_portable: on Haswell the kernels should run at the avx2 level")
if key(native) != key(emulated):
    sys.exit("check_portable: the key sentence differs emulated")
PY
if [[ $translate == true ]]; then
    if ! grep -q -w avx512f /proc/cpuinfo; then
        echo "check_portable: --translate needs an AVX-512 machine (on an AVX2 one the native run is the check)" >&2
        exit 1
    fi
    echo "Bonjour à tous." >"$dir/fr.txt"
    args=(--offline -q translate "$dir/fr.txt" --translator llm --threads 2)
    native=$(PRECIS_KQUANT=avx2 "$precis" "${args[@]}")
    emulated=$(emulate Haswell "$precis" "${args[@]}")
    echo "translation: native \"$native\", emulated \"$emulated\""
    [[ "$native" == "$emulated" ]] || { echo "check_portable: the translation differs emulated" >&2; exit 1; }
fi

for cpu in SandyBridge Westmere; do
    echo "== $cpu (below x86-64-v3): a clear error, exit 1"
    set +e
    message=$(emulate "$cpu" "$precis" --version 2>&1)
    code=$?
    set -e
    echo "exit $code: $message"
    if [[ $code -ne 1 || "$message" != *"needs a CPU with x86-64-v3"* ]]; then
        echo "check_portable: on $cpu precis should say what CPU it needs and exit 1" >&2
        exit 1
    fi
done

echo "== functions with AVX-512 instructions (zmm, mask or upper 16 vector registers)"
# Of precis: the AVX-512 kernels, the VNNI tiles and int8 kernel, and the AVX-512 instance of
# `cpu::vectorized`;
# of other crates, their own kernels behind run-time checks: candle's repacked quantized
# products (`repack_x86`), crc32fast, gemm, and the out-of-line AVX-512 intrinsics they call.
objdump -d --no-show-raw-insn -C "$precis" | awk '
    /^[0-9a-f]+ <.*>:$/ { name = $0; sub(/^[0-9a-f]+ </, "", name); sub(/>:$/, "", name); next }
    /%zmm|%k[1-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])/ { if (!(name in seen)) { seen[name] = 1; print name } }
' | sort >"$dir/avx512"
unexpected=$(grep -v -E 'avx512|kquant::tiles|int8::vnni::|quantized::repack_x86::|^gemm|pulp' "$dir/avx512" || true)
echo "$(wc -l <"$dir/avx512") functions hold AVX-512 instructions"
if [[ -n "$unexpected" ]]; then
    echo "check_portable: AVX-512 instructions outside the dispatched kernels:" >&2
    echo "$unexpected" | head -20 >&2
    exit 1
fi
echo "check_portable: ok"
