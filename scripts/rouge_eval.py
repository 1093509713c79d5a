#!/usr/bin/env python3
"""ROUGE of precis summaries on CNN/DailyMail articles with reference highlights.

Two steps, because the abstractive summaries take about a minute per article on a 2-core CPU:

  # 1. run precis on the articles; resumable (articles already in OUT are skipped), so it can
  #    be stopped and started again, and scored while it is still running
  scripts/rouge_eval.py --limit 100 generate --kind abstractive --out eval/cnndm-abstractive.jsonl
  scripts/rouge_eval.py --limit 100 generate --kind extractive --out eval/cnndm-extractive.jsonl

  # 2. score what finished, with LEAD-3 as the baseline, on the articles present in every file
  scripts/rouge_eval.py --limit 100 score --extractive eval/cnndm-extractive.jsonl \
      --abstractive eval/cnndm-abstractive.jsonl

Scoring uses Google's `rouge-score` package (pip install rouge-score), ROUGE-1/2/L F1 with the
Porter stemmer, and ROUGE-Lsum over newline-separated sentences as in the CNN/DM literature.
LEAD-3 takes the first three sentences of the article, cut by a plain regular expression (end
of sentence, then a capital, digit or quotation mark).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "shared",
    "eval",
    "summarization",
    "cnndm-test-frank250.en.jsonl",
)


def load_articles(path, limit):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows[:limit] if limit else rows


def load_done(path):
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    row = json.loads(line)
                    done[row["id"]] = row
    return done


def generate(args):
    articles = load_articles(args.data, args.limit)
    done = load_done(args.out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    flags = ["--format", "json", "--sentences", str(args.sentences)]
    if args.kind == "abstractive":
        flags += ["--no-extractive", "--model", args.model]
    else:
        flags += ["--no-abstractive"]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    flags += args.precis_arg or []
    todo = [a for a in articles if a["id"] not in done]
    print(f"{len(done)} done, {len(todo)} to go -> {args.out}", file=sys.stderr)
    with open(args.out, "a", encoding="utf-8") as out:
        for n, article in enumerate(todo, 1):
            with tempfile.NamedTemporaryFile("w", suffix=".en.txt", delete=False) as tmp:
                tmp.write(article["article"])
            started = time.time()
            try:
                proc = subprocess.run(
                    [args.precis, "--quiet", "summarize", tmp.name] + flags,
                    capture_output=True,
                    text=True,
                )
            finally:
                os.unlink(tmp.name)
            elapsed = time.time() - started
            if proc.returncode != 0:
                print(f"{article['id']}: precis failed ({proc.returncode}): {proc.stderr.strip()}",
                      file=sys.stderr)
                continue
            report = json.loads(proc.stdout)
            summary = report.get("summary", {})
            row = {"id": article["id"], "seconds": round(elapsed, 1)}
            if args.kind == "abstractive":
                abstractive = summary["abstractive"]
                row.update(
                    model=abstractive["model"],
                    text=abstractive["text"],
                    stop=abstractive.get("stop"),
                    prompt_tokens=abstractive.get("prompt_tokens"),
                    generated_tokens=abstractive.get("generated_tokens"),
                    sentences=[
                        {"text": s["text"], "supported": s["supported"]}
                        for s in abstractive.get("sentences", [])
                    ],
                    properties=abstractive.get("properties"),
                    shortcomings=abstractive.get("shortcomings", []),
                    candidates=[
                        {"style": c["style"], "chosen": c["chosen"], "shortcomings": c["shortcomings"],
                         "mended": bool(c.get("hints")), "text": c.get("text"),
                         "properties": c.get("properties")}
                        for c in abstractive.get("candidates", [])
                    ],
                )
            else:
                row.update(
                    similarity=summary.get("similarity"),
                    sentences=[s["text"] for s in summary["extractive"]],
                )
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            print(f"[{n}/{len(todo)}] {article['id']} {elapsed:.0f}s", file=sys.stderr)


def score(args):
    from rouge_score import rouge_scorer

    articles = {a["id"]: a for a in load_articles(args.data, 0)}
    extractive = load_done(args.extractive)
    abstractive = load_done(args.abstractive) if args.abstractive else {}
    ids = [i for i in articles if i in extractive]
    if args.abstractive:
        ids = [i for i in ids if i in abstractive]
    if args.limit:
        ids = ids[: args.limit]
    if not ids:
        sys.exit("no article is present in every input file")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    systems = {
        "LEAD-3": lambda i: split_sentences(articles[i]["article"])[:3],
        f"precis extractive ({args.sentences} sentences)": lambda i: extractive[i]["sentences"],
    }
    if args.abstractive:
        model = next(iter(abstractive.values())).get("model", "LLM")
        systems[f"precis abstractive ({model})"] = lambda i: [abstractive[i]["text"]]
    rows = []
    for name, pick in systems.items():
        totals = {}
        for i in ids:
            reference = "\n".join(split_reference(articles[i]["reference"]))
            scores = scorer.score(reference, "\n".join(s.strip() for s in pick(i)))
            for k, v in scores.items():
                totals[k] = totals.get(k, 0.0) + v.fmeasure
        rows.append((name, {k: 100 * v / len(ids) for k, v in totals.items()}))
    print(f"{len(ids)} articles of {os.path.basename(args.data)}; mean ROUGE F1 (rouge-score, stemmed)\n")
    print("| system | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum |")
    print("|---|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s['rouge1']:.2f} | {s['rouge2']:.2f} | {s['rougeL']:.2f} | {s['rougeLsum']:.2f} |")
    if args.abstractive:
        times = [abstractive[i]["seconds"] for i in ids]
        stops = [abstractive[i].get("stop") for i in ids]
        print(f"\nabstractive: median {statistics.median(times):.0f} s per article; "
              f"{sum(s != 'end' for s in stops)} of {len(ids)} stopped before the end token")
        supported = [s["supported"] for i in ids for s in abstractive[i].get("sentences", [])]
        if not supported and args.support_model:
            supported = support_offline(args.support_model, [(articles[i]["article"], abstractive[i]["text"]) for i in ids])
        if supported:
            print(f"provenance: {sum(supported)} of {len(supported)} abstractive sentences supported "
                  f"(best cosine with an article sentence >= {SUPPORT_THRESHOLD})")
        measured = [abstractive[i]["properties"] for i in ids if abstractive[i].get("properties")]
        if measured:
            low, high = args.summary_sentences
            in_form = sum(low <= p["sentences"] <= high for p in measured)
            sentences = sum(p["sentences"] for p in measured)
            copies = sum(p["near_copies"] for p in measured)
            findings = sum(p["findings"] for p in measured)
            met = sum(not abstractive[i]["shortcomings"] for i in ids if abstractive[i].get("properties"))
            mended = sum(any(c["mended"] and c["chosen"] for c in abstractive[i]["candidates"])
                         for i in ids if abstractive[i].get("properties"))
            print(f"form: {in_form} of {len(measured)} summaries have {low} to {high} sentences; "
                  f"{copies} of {sentences} sentences are near copies ({100 * copies / max(sentences, 1):.1f}%); "
                  f"{findings} fidelity findings remain; {met} summaries meet every check; "
                  f"{mended} kept a rewritten sentence")
        candidates_report(scorer, articles, abstractive, ids)


def candidates_report(scorer, articles, abstractive, ids):
    """ROUGE-1 of the candidates themselves, where the output kept them (text included): by
    style and round, of those that met every check, and of the best one per article (what a
    perfect choice among them would score)."""
    kept = [i for i in ids if any(c.get("text") for c in abstractive[i].get("candidates", []))]
    if not kept:
        return
    by_kind, met, best = {}, [], []
    for i in kept:
        reference = "\n".join(split_reference(articles[i]["reference"]))
        rounds = {}
        scores = []
        for c in abstractive[i]["candidates"]:
            r1 = 100 * scorer.score(reference, c["text"])["rouge1"].fmeasure
            scores.append(r1)
            if c["mended"]:
                kind = f"{c['style']}, rewritten"
            else:
                rounds[c["style"]] = rounds.get(c["style"], 0) + 1
                kind = f"{c['style']}, round {rounds[c['style']]}"
            by_kind.setdefault(kind, []).append(r1)
            if not c["shortcomings"]:
                met.append(r1)
        best.append(max(scores))
    print(f"\ncandidates ({len(kept)} articles): mean ROUGE-1 by kind (how many)")
    for kind, values in sorted(by_kind.items()):
        print(f"  {kind}: {statistics.mean(values):.2f} ({len(values)})")
    if met:
        print(f"  meeting every check: {statistics.mean(met):.2f} ({len(met)})")
    print(f"  best candidate of each article: {statistics.mean(best):.2f}")


# src/summarize/provenance.rs SUPPORT_THRESHOLD_EMBEDDING
SUPPORT_THRESHOLD = 0.49


def support_offline(model_dir, pairs):
    """Provenance of summaries made by a precis that predates it: the same model and threshold,
    in sentence-transformers (the vectors match precis's, tests/embed_parity.rs)."""
    from sentence_transformers import SentenceTransformer, models
    transformer = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = []
    for article, summary in pairs:
        a = model.encode([s for s in split_sentences(article) if len(s.split()) >= 4] or [article])
        for sentence in split_sentences(summary):
            v = model.encode([sentence])[0]
            out.append(bool((a @ v).max() >= SUPPORT_THRESHOLD))
    return out


def split_sentences(text):
    # A plain splitter for LEAD-3: ends of sentences followed by a capital, a digit or a quote.
    return [s for s in re.split(r"(?<=[.!?'\"’”])\s+(?=[A-Z0-9‘“\"'])", text.strip()) if s]


def split_reference(text):
    # The references are highlights joined into one string; one per line for ROUGE-Lsum.
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9'\"‘“])", text.strip()) if s]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--limit", type=int, default=100, help="first N articles (0 = all)")
    parser.add_argument("--sentences", type=int, default=3)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--kind", choices=["extractive", "abstractive"], required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--precis", default="target/release/precis")
    g.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    g.add_argument("--threads", type=int)
    g.add_argument("--precis-arg", action="append", help="extra flag passed to precis")
    s = sub.add_parser("score")
    s.add_argument("--extractive", required=True)
    s.add_argument("--abstractive")
    s.add_argument("--summary-sentences", type=lambda v: tuple(int(x) for x in v.split("-")),
                   default=(3, 5), help="the range the summaries were asked for (default 3-5)")
    s.add_argument("--support-model", help="all-MiniLM-L6-v2 folder, to measure the provenance of "
                   "abstractive summaries recorded without it (needs sentence-transformers)")
    args = parser.parse_args()
    generate(args) if args.command == "generate" else score(args)


if __name__ == "__main__":
    main()
