#!/usr/bin/env bash
# Speed of precis next to llama.cpp on the same GGUF, the same prompts and the same thread
# count, run interleaved (precis, llama.cpp, precis, ...) so that both see the same machine.
#
#   scripts/bench.sh [--model ID] [--runs N] [--threads N] [--max-tokens N] [--article FILE]
#                    [--out DIR] [--no-e2e] [--batch N] [--articles N]
#
# Needs: a release build of precis (built here), the model in the cache (`precis models fetch`),
# gcc with OpenMP (memory bandwidth), and llama-cpp-python in the Python named by $LLAMA_PYTHON
# (default /work/venv-llama/bin/python; see scripts/README-llama.md).
#
# Prints, and writes to DIR/summary.md and DIR/summary.json:
# - the machine (CPU model, cores, load) and its streaming read bandwidth with the same threads;
# - single prompt (the article in one request, greedy, max tokens): load time, prompt and
#   generated tokens/s, peak RSS: median [min-max] per engine and the precis/llama.cpp ratio,
#   for precis as it runs (prompt-lookup drafts on) and with one token per pass (--no-lookup);
#   whether the greedy outputs are identical;
# - the bound memory puts on generation: bandwidth / bytes of weights read per token;
# - end to end: `precis run ARTICLE` wall time and peak RSS, translation and summary separately,
#   and the same pipeline requests (`--save-requests`) replayed through llama.cpp;
# - batched decoding: the article's translation requests (from the end-to-end run) as one set,
#   through precis decoding up to N of them together (`--batch N`, default 8), llama.cpp one
#   after another, and llama.cpp with N parallel sequences (scripts/llama_run.py --parallel N),
#   interleaved: aggregate generated tokens/s, wall time, peak RSS; `summary.json` has
#   `ratio_batched_vs_llama_sequential` and `ratio_batched_vs_llama_batched` for this set.
#   `--articles N` adds the translation requests of the first N newstest2014-fr articles as a
#   second set (each article run once through `precis run` to save its requests).
set -euo pipefail
cd "$(dirname "$0")/.."

model=qwen2.5-coder-1.5b-instruct
runs=3
threads=2
max_tokens=200
article=examples/alaska-summit.fr.txt
out=target/bench
e2e=1
batch=8
articles=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --max-tokens) max_tokens=$2; shift 2 ;;
        --article) article=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --no-e2e) e2e=0; shift ;;
        --batch) batch=$2; shift 2 ;;
        --articles) articles=$2; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
python=${LLAMA_PYTHON:-/work/venv-llama/bin/python}
if ! "$python" -c 'import llama_cpp' 2>/dev/null; then
    echo "bench.sh: llama-cpp-python is not importable from $python (set LLAMA_PYTHON; see scripts/README-llama.md)" >&2
    exit 2
fi
mkdir -p "$out"

cargo build --release --quiet
cargo bench --bench llm --no-run --quiet 2>/dev/null
precis=${CARGO_TARGET_DIR:-target}/release/precis
replay=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/llm-* | grep -v '\.d$' | head -1)
gguf=$("$precis" --offline models path "$model")

echo "== machine"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "$cpu, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
gcc -O3 -march=native -fopenmp scripts/membw.c -o "$out/membw"
bandwidth=$(OMP_NUM_THREADS=$threads "$out/membw")
echo "streaming read, $threads threads: $bandwidth GB/s"

python3 - "$article" "$max_tokens" > "$out/requests.json" <<'EOF'
import json, sys
article = open(sys.argv[1], encoding="utf-8").read()
system = ("You are a professional translator. Translate the user's French text into English. "
          "Output only the translation.")
print(json.dumps([{"name": "article", "max_tokens": int(sys.argv[2]),
                   "messages": [{"role": "system", "content": system},
                                {"role": "user", "content": article}]}], ensure_ascii=False))
EOF

echo "== single prompt: $runs runs each, interleaved, $threads threads, up to $max_tokens tokens"
for i in $(seq 1 "$runs"); do
    "$replay" --model "$gguf" --requests "$out/requests.json" --threads "$threads" > "$out/precis-$i.json"
    "$replay" --model "$gguf" --requests "$out/requests.json" --threads "$threads" --no-lookup \
        > "$out/precis-plain-$i.json"
    "$python" scripts/llama_run.py --model "$gguf" --requests "$out/requests.json" \
        --threads "$threads" > "$out/llama-$i.json" 2> "$out/llama-$i.log"
    echo "run $i done"
done

if [ "$e2e" = 1 ]; then
    echo "== end to end: precis run $article, then its requests through llama.cpp"
    /usr/bin/time -f '%e %M' -o "$out/e2e-time.txt" \
        "$precis" --offline --quiet run "$article" --format json --threads "$threads" \
        --save-requests "$out/e2e-requests.json" > "$out/e2e-precis.json"
    "$python" scripts/llama_run.py --model "$gguf" --requests "$out/e2e-requests.json" \
        --threads "$threads" > "$out/e2e-llama.json" 2> "$out/e2e-llama.log"
fi

# The translation requests of request files (`--save-requests`), renamed with a prefix.
translation_requests() {
    python3 - "$@" <<'EOF'
import json, sys
prefix, files = sys.argv[1], sys.argv[2:]
requests = []
for path in files:
    for r in json.load(open(path, encoding="utf-8")):
        if r["messages"][0]["content"].startswith("You translate"):
            r["name"] = f"{prefix}{len(requests)}"
            requests.append(r)
print(json.dumps(requests, ensure_ascii=False))
EOF
}

sets=""
if [ "$e2e" = 1 ]; then
    translation_requests demo- "$out/e2e-requests.json" > "$out/batch-demo.json"
    sets="demo"
    if [ "$articles" -gt 0 ]; then
        echo "== saving the requests of $articles newstest2014-fr articles"
        mkdir -p "$out/articles"
        python3 - "$articles" "$out/articles" <<'EOF'
import json, pathlib, sys
limit, folder = int(sys.argv[1]), pathlib.Path(sys.argv[2])
docs = pathlib.Path("../shared/eval/newstest2014-fr/newstest2014-fr.docs.jsonl").read_text(encoding="utf-8")
for doc in [json.loads(line) for line in docs.splitlines()][:limit]:
    (folder / f"{doc['docid']}.fr.txt").write_text("\n\n".join(doc["fr"]) + "\n", encoding="utf-8")
EOF
        for f in "$out"/articles/*.fr.txt; do
            "$precis" --offline --quiet run "$f" --translator llm --no-abstractive --threads "$threads" \
                --save-requests "${f%.fr.txt}.requests.json" > /dev/null
        done
        translation_requests articles- "$out"/articles/*.requests.json > "$out/batch-articles.json"
        sets="demo articles"
    fi
    for set in $sets; do
        echo "== batched decoding, $set set: $runs runs each, interleaved, up to $batch sequences"
        for i in $(seq 1 "$runs"); do
            "$replay" --model "$gguf" --requests "$out/batch-$set.json" --threads "$threads" \
                --batch "$batch" > "$out/batch-$set-precis-$i.json"
            "$python" scripts/llama_run.py --model "$gguf" --requests "$out/batch-$set.json" \
                --threads "$threads" > "$out/batch-$set-llama-seq-$i.json" 2> "$out/batch-$set-llama-seq-$i.log"
            "$python" scripts/llama_run.py --model "$gguf" --requests "$out/batch-$set.json" \
                --threads "$threads" --parallel "$batch" > "$out/batch-$set-llama-par-$i.json" \
                2> "$out/batch-$set-llama-par-$i.log"
            echo "run $i done"
        done
    done
fi

python3 - "$out" "$runs" "$bandwidth" "$gguf" "$cpu" "$threads" "$e2e" "$batch" "$sets" <<'EOF'
import json, os, statistics, sys
out, runs, bandwidth, gguf, cpu, threads, e2e, batch, sets = sys.argv[1:]
runs, bandwidth, threads = int(runs), float(bandwidth), int(threads)
load = lambda p: json.load(open(os.path.join(out, p)))
precis = [load(f"precis-{i}.json") for i in range(1, runs + 1)]
plain = [load(f"precis-plain-{i}.json") for i in range(1, runs + 1)]
llama = [load(f"llama-{i}.json") for i in range(1, runs + 1)]
figures = {
    "load (ms)": lambda r: r["load_ms"],
    "prompt tokens/s": lambda r: r["totals"]["prompt_tokens_per_s"],
    "generated tokens/s": lambda r: r["totals"]["generated_tokens_per_s"],
    "peak RSS (MiB)": lambda r: r["peak_rss_mib"],
}
lines = [f"Machine: {cpu}, {os.cpu_count()} cores; {threads} threads; streaming read {bandwidth} GB/s.",
         f"Single prompt: {precis[0]['totals']['prompt_tokens']} prompt tokens, "
         f"{precis[0]['totals']['generated_tokens']} generated (precis) / "
         f"{llama[0]['totals']['generated_tokens']} (llama.cpp); {runs} interleaved runs each.", "",
         "| figure | precis median [min-max] | llama.cpp median [min-max] | precis / llama.cpp "
         "| precis --no-lookup median [min-max] | --no-lookup / llama.cpp |",
         "| --- | --- | --- | --- | --- | --- |"]
summary = {"bandwidth_gb_s": bandwidth, "threads": threads, "figures": {}}
span = lambda v: f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"
for name, get in figures.items():
    a, b, c = [get(r) for r in precis], [get(r) for r in llama], [get(r) for r in plain]
    ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
    # For times and memory, lower is better: the ratio says how many times better precis is.
    lower_better = "ms" in name or "MiB" in name
    ratio = mb / ma if lower_better else ma / mb
    ratio_plain = mb / mc if lower_better else mc / mb
    summary["figures"][name] = {"precis": a, "llama.cpp": b, "ratio": ratio,
                                "precis_no_lookup": c, "ratio_no_lookup": ratio_plain}
    lines.append(f"| {name} | {span(a)} | {span(b)} | {ratio:.2f}x | {span(c)} | {ratio_plain:.2f}x |")
drafts = precis[0]["requests"][0]
lines.append("")
lines.append("Ratios are oriented so that above 1 means precis is better (faster, or less memory).")
lines.append(f"Prompt lookup in run 1: {drafts.get('accepted_draft_tokens')} of {drafts.get('draft_tokens')} "
             f"draft tokens confirmed, {drafts.get('generation_passes')} passes for "
             f"{drafts['generated_tokens'] - 1} tokens after the first.")
if {r["requests"][0]["text"] for r in precis} != {r["requests"][0]["text"] for r in plain}:
    lines.append("WARNING: precis' output differs with and without prompt lookup.")
texts_p = {r["requests"][0]["text"] for r in precis}
texts_l = {r["requests"][0]["text"] for r in llama}
tp, tl = precis[0]["requests"][0]["text"], llama[0]["requests"][0]["text"]
if tp == tl:
    same = "identical"
else:
    first = next((i for i, (x, y) in enumerate(zip(tp, tl)) if x != y), min(len(tp), len(tl)))
    same = f"different from character {first} on: precis '{tp[first:first+40]}' / llama.cpp '{tl[first:first+40]}'"
lines.append(f"Greedy outputs: {same} (distinct outputs across runs: precis {len(texts_p)}, llama.cpp {len(texts_l)}).")
summary["greedy_outputs"] = same
weights = os.path.getsize(gguf)
bound = bandwidth * 1e9 / weights
lines.append(f"Memory bound on generation: {bandwidth} GB/s / {weights / 2**30:.2f} GiB of weights per token "
             f"= {bound:.1f} tokens/s (precis reaches {summary['figures']['generated tokens/s']['precis'][0] / bound:.0%} of it in run 1).")
summary["generation_bound_tokens_s"] = bound
if e2e == "1":
    wall, rss_kib = open(os.path.join(out, "e2e-time.txt")).read().split()
    p = load("e2e-precis.json")
    t = p.get("timings", {})
    l = load("e2e-llama.json")["totals"]
    lines += ["", "End to end (`precis run`, one run):", "",
              "| | precis | llama.cpp (same requests) |", "| --- | --- | --- |",
              f"| wall (s) | {float(wall):.1f} | {l['wall_ms_including_load'] / 1e3:.1f} |",
              f"| translation (s) | {t.get('translate_ms', 0) / 1e3:.1f} | |",
              f"| summary (s) | {t.get('summarize_ms', 0) / 1e3:.1f} | |",
              f"| prompt / generated tokens | {t.get('prompt_tokens')} / {t.get('generated_tokens')} | {l['prompt_tokens']} / {l['generated_tokens']} |",
              f"| peak RSS (MiB) | {int(rss_kib) / 1024:.0f} | {load('e2e-llama.json')['peak_rss_mib']:.0f} |"]
    summary["e2e"] = {"precis_wall_s": float(wall), "precis_peak_rss_mib": int(rss_kib) / 1024,
                      "precis_timings": t, "llama_totals": l}
for set_name in sets.split():
    rows = {
        f"precis, up to {batch} together": [load(f"batch-{set_name}-precis-{i}.json") for i in range(1, runs + 1)],
        "llama.cpp, one after another": [load(f"batch-{set_name}-llama-seq-{i}.json") for i in range(1, runs + 1)],
        f"llama.cpp, {batch} parallel sequences": [load(f"batch-{set_name}-llama-par-{i}.json") for i in range(1, runs + 1)],
    }
    requests = rows["llama.cpp, one after another"][0]["totals"]["requests"]
    lines += ["", f"Batched decoding, {set_name} set: {requests} translation requests, {runs} interleaved runs each; "
              "generated tokens/s = tokens after each request's first over the wall time less the prompt passes.", "",
              "| engine | generated tokens/s | wall (s) | prompt tokens/s | generated tokens | peak RSS (MiB) |",
              "| --- | --- | --- | --- | --- | --- |"]
    medians = []
    for name, reports in rows.items():
        rate = [r["totals"]["generated_tokens_per_s"] for r in reports]
        wall = [r["totals"]["wall_ms"] / 1e3 for r in reports]
        prompt = [r["totals"]["prompt_tokens_per_s"] for r in reports]
        rss = [r["peak_rss_mib"] for r in reports]
        medians.append(statistics.median(rate))
        lines.append(f"| {name} | {span(rate)} | {span(wall)} | {span(prompt)} | "
                     f"{reports[0]['totals']['generated_tokens']} | {span(rss)} |")
    precis_rate, seq_rate, par_rate = medians
    ratios = {"ratio_batched_vs_llama_sequential": precis_rate / seq_rate,
              "ratio_batched_vs_llama_batched": precis_rate / par_rate}
    lines.append("")
    lines.append(f"precis batched / llama.cpp one after another: {ratios['ratio_batched_vs_llama_sequential']:.2f}x; "
                 f"/ llama.cpp batched: {ratios['ratio_batched_vs_llama_batched']:.2f}x (medians).")
    summary.setdefault("batched", {})[set_name] = {
        "batch": int(batch), "requests": requests,
        "generated_tokens_per_s": {k: [r["totals"]["generated_tokens_per_s"] for r in v] for k, v in rows.items()},
        **ratios}
    if set_name == "demo":
        summary.update(ratios)
text = "\n".join(lines)
print(text)
open(os.path.join(out, "summary.md"), "w").write(text + "\n")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
EOF
