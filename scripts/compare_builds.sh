#!/usr/bin/env bash
# Two precis binaries (two builds, or one build at two CPU levels) on the same article,
# interleaved (A, B, A, B, ...) so that both see the same machine: wall time, peak RSS, prompt
# and generated tokens/s of `precis run ARTICLE --translator llm`, and whether each B output is
# the same text as A's (translation and summary).
#
#   scripts/compare_builds.sh [--rounds N] [--article FILE] A B [ENV=VALUE ...]
#
# A and B are binaries; an ENV=VALUE after them is set for B alone (PRECIS_KQUANT=avx2 compares
# a build with itself held to AVX2). Needs qwen2.5-coder-1.5b-instruct in the cache.
set -euo pipefail
rounds=2
article=examples/alaska-summit.fr.txt
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --article) article=$2; shift 2 ;;
        *) break ;;
    esac
done
a=$1
b=$2
shift 2
b_env=("$@")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
    for side in A B; do
        if [[ $side == A ]]; then bin=$a; env=(); else bin=$b; env=("${b_env[@]}"); fi
        start=$(date +%s.%N)
        env "${env[@]}" /usr/bin/time -f "%M" -o "$out/rss" "$bin" --offline -q run "$article" \
            --translator llm --format json >"$out/$side-$round.json"
        end=$(date +%s.%N)
        python3 - "$out/$side-$round.json" "$out/A-1.json" "$side" "$round" "$start" "$end" \
            "$(cat "$out/rss")" <<'PY'
import json, sys
path, first, side, round_, start, end, rss = sys.argv[1:]
report, reference = json.load(open(path)), json.load(open(first))
t = report["timings"]
def text(r):
    return r["translation"]["paragraphs"], r["summary"]["abstractive"]["text"]
same = "same text as A" if text(report) == text(reference) else "text differs from A"
print(f"{side} round {round_}: wall {float(end) - float(start):.1f} s, peak RSS {int(rss) // 1024} MiB, "
      f"prompt {t['prompt_tokens_per_s']} tokens/s, generated {t['generated_tokens_per_s']} tokens/s "
      f"({t['generated_tokens']} tokens); {same}")
PY
    done
done
