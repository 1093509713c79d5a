#!/usr/bin/env bash
# Translation quality: precis against reference translations (BLEU and chrF of sacrebleu), with
# llama.cpp on the same GGUF and the same prompts as the reference point. Resumable: rerun the
# same command to go on where it stopped; scores cover the lines finished by every engine.
#
#   scripts/eval.sh                                  # both sets, both Qwen models, precis + llama.cpp
#   scripts/eval.sh --limit 5 --out /tmp/eval-quick  # a quick check
#   scripts/eval.sh --translator marian              # precis' Marian engine (needs its weights)
#
# Options:
#   --sets "newstest2013:300 flores200-dev"   sets, each with an optional line count (the first N
#                                             lines; default: newstest2013's first 300, all 997 of FLORES dev)
#   --models "ID ..."                         default: qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct
#                                             (with --translator marian: opus-mt-fr-en)
#   --translator llm|marian                   llm (default): engines precis and llama.cpp;
#                                             marian: engine precis-marian only
#   --engines precis,llama.cpp                override the engines
#   --limit N                                 at most N lines of every set
#   --threads N                               threads for precis and llama.cpp (default 2)
#   --llama-threads N                         threads for llama.cpp alone (default: --threads)
#   --chunk N                                 lines per precis call (default 25)
#   --out DIR                                 default eval/translation
#   --precis BIN                              default: precis on PATH, else target/release/precis
#   --llama-python PY                         a Python with llama-cpp-python (default /work/venv-llama/bin/python)
#   --sacrebleu BIN                           default: sacrebleu on PATH, else /work/venv-eval/bin/sacrebleu
#   -- ARGS                                   passed to precis (e.g. -- --offline)
# Setup: scripts/requirements-eval.txt (sacrebleu), scripts/requirements-llama.txt (llama.cpp).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sets="newstest2013:300 flores200-dev"
models=""
translator=llm
engines=""
limit=""
threads=2
chunk=25
out="$(dirname "$here")/eval/translation"
common=()
run_extra=()
score_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sets) sets="$2"; shift 2 ;;
        --models) models="$2"; shift 2 ;;
        --translator) translator="$2"; shift 2 ;;
        --engines) engines="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --chunk) chunk="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --precis) run_extra+=(--precis "$2"); shift 2 ;;
        --llama-python) run_extra+=(--llama-python "$2"); shift 2 ;;
        --llama-threads) run_extra+=(--llama-threads "$2"); shift 2 ;;
        --sacrebleu) score_extra+=(--sacrebleu "$2"); shift 2 ;;
        --) shift; for a in "$@"; do run_extra+=("--precis-arg=$a"); done; break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "eval.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$translator" in
    llm) models="${models:-qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct}"; engines="${engines:-precis,llama.cpp}" ;;
    marian) models="${models:-opus-mt-fr-en}"; engines="${engines:-precis-marian}" ;;
    *) echo "eval.sh: --translator is llm or marian" >&2; exit 2 ;;
esac
common=(--out "$out")
for model in $models; do
    for spec in $sets; do
        set_name="${spec%%:*}"
        count=""
        [ "$spec" != "$set_name" ] && count="${spec#*:}"
        if [ -n "$limit" ] && { [ -z "$count" ] || [ "$limit" -lt "$count" ]; }; then count="$limit"; fi
        python3 "$here/translation_eval.py" "${common[@]}" run --set "$set_name" ${count:+--limit "$count"} \
            --model "$model" --engines "$engines" --threads "$threads" --chunk "$chunk" "${run_extra[@]}"
    done
done
python3 "$here/translation_eval.py" "${common[@]}" score "${score_extra[@]}"
