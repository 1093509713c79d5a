#!/usr/bin/env python3
"""Throughput of `precis batch` against `precis run` once per article, same machine, same run:
the first N articles (default 20) of newstest2014-fr as whole articles, the same flags for both.
Reports articles per hour and generated tokens per second (all generated tokens over the wall
time of the whole set, model loading included), their ratios, and whether both ways gave the
same translation and summary for every article (greedy decoding: they should).

    scripts/batch_bench.py --precis target/release/precis --out eval/batch/NAME [--limit 20] [-- ARGS]

ARGS go to both commands (default: --translator llm --offline). Writes `summary.json` and
`summary.md` in --out, with the batch's results.jsonl and each run's report.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared/eval/newstest2014-fr/newstest2014-fr.docs.jsonl"


def outputs(report):
    """What a user reads of a report: the translation and the summary."""
    summary = report.get("summary") or {}
    abstractive = (summary.get("abstractive") or {}).get("text")
    extractive = [s["text"] for s in summary.get("extractive") or []]
    return report["translation"]["paragraphs"], abstractive, extractive


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precis", default=str(ROOT / "target/release/precis"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--docs", default=str(DOCS))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("precis_args", nargs="*", help="after --: passed to both commands")
    args = parser.parse_args()
    flags = args.precis_args or ["--translator", "llm", "--offline"]
    out = pathlib.Path(args.out)
    (out / "run").mkdir(parents=True, exist_ok=True)
    docs = [json.loads(line) for line in open(args.docs, encoding="utf-8")][: args.limit]
    texts = {doc["docid"]: "\n\n".join(doc["fr"]) + "\n" for doc in docs}
    feed = out / "feed.jsonl"
    with open(feed, "w", encoding="utf-8") as f:
        for docid, text in texts.items():
            f.write(json.dumps({"id": docid, "text": text}, ensure_ascii=False) + "\n")

    # precis run, once per article: each run loads the models again.
    runs = {}
    started = time.monotonic()
    for n, (docid, text) in enumerate(texts.items(), 1):
        source = out / "run" / f"{docid}.fr.txt"
        source.write_text(text, encoding="utf-8")
        t = time.monotonic()
        done = subprocess.run([args.precis, "-q", "run", str(source), "--format", "json"] + flags,
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"batch_bench: precis run {docid} exited {done.returncode}: {done.stderr.strip()}")
        (out / "run" / f"{docid}.json").write_text(done.stdout, encoding="utf-8")
        runs[docid] = json.loads(done.stdout)
        print(f"batch_bench: run {n}/{len(texts)} {docid}: {time.monotonic() - t:.1f} s", file=sys.stderr)
    run_wall = time.monotonic() - started

    # precis batch, the same articles in one process.
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    t = time.monotonic()
    done = subprocess.run([args.precis, "batch", str(feed), "-o", str(results)] + flags,
                          capture_output=True, text=True)
    batch_wall = time.monotonic() - t
    (out / "batch.stderr").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        sys.exit(f"batch_bench: precis batch exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    batch = {}
    for line in open(results, encoding="utf-8"):
        record = json.loads(line)
        batch[record["id"]] = record

    same = sum(outputs(batch[d]) == outputs(runs[d]) for d in texts)
    tokens_run = sum(r["timings"]["generated_tokens"] for r in runs.values())
    tokens_batch = sum(r["timings"]["generated_tokens"] for r in batch.values())
    figures = {
        "articles": len(texts),
        "flags": flags,
        "run": {"wall_s": round(run_wall, 1), "articles_per_hour": round(3600 * len(texts) / run_wall, 1),
                "generated_tokens": tokens_run, "generated_tokens_per_s": round(tokens_run / run_wall, 2)},
        "batch": {"wall_s": round(batch_wall, 1), "articles_per_hour": round(3600 * len(texts) / batch_wall, 1),
                  "generated_tokens": tokens_batch, "generated_tokens_per_s": round(tokens_batch / batch_wall, 2)},
        "identical_outputs": same,
    }
    figures["ratio_articles_per_hour"] = round(figures["batch"]["articles_per_hour"] / figures["run"]["articles_per_hour"], 3)
    figures["ratio_generated_tokens_per_s"] = round(
        figures["batch"]["generated_tokens_per_s"] / figures["run"]["generated_tokens_per_s"], 3)
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    table = [
        "| | wall (s) | articles/hour | generated tokens | generated tokens/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in [("run", "`precis run` once per article"), ("batch", "`precis batch`")]:
        f = figures[name]
        table.append(f"| {label} | {f['wall_s']} | {f['articles_per_hour']} | {f['generated_tokens']} | {f['generated_tokens_per_s']} |")
    table.append(f"\nbatch / run: {figures['ratio_articles_per_hour']}x articles per hour, "
                 f"{figures['ratio_generated_tokens_per_s']}x generated tokens/s; "
                 f"identical translation and summary: {same}/{len(texts)}")
    (out / "summary.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))


if __name__ == "__main__":
    main()
