#!/usr/bin/env python3
"""Whole-article translation quality: each article of a document-level set (default
newstest2014-fr: 78 French-written articles, 987 lines) goes through `precis translate` as one
input, one line per paragraph; then sacrebleu BLEU and chrF against the references, fidelity
findings by kind, repairs and wall time. Resumable: rerun the same command to go on where it
stopped; the scores cover the articles finished.

    scripts/doc_eval.py run --precis target/release/precis --out eval/doc/new [--limit 10] [-- ARGS]
    scripts/doc_eval.py score --out eval/doc/new [--checker BIN] [--sacrebleu BIN]

With `run --summary`, each article goes through `precis run` (translation and summary) instead,
and `score` adds the summary paragraphs' form figures (sentences, support, near copies,
findings by kind) and writes `summaries.md`: each summary with its attribution findings and
the article sentences that support each summary sentence, for reading by hand.

`score` counts findings twice: as the precis run reported them (what remains after its repairs),
and with one checker for all runs (`cargo build --release --example fidelity_check`), so that two
versions of precis are compared by the same check.
"""

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared/eval/newstest2014-fr/newstest2014-fr.docs.jsonl"


def load_docs(path, limit):
    docs = [json.loads(line) for line in open(path, encoding="utf-8")]
    return docs[:limit] if limit else docs


def run(args):
    out = pathlib.Path(args.out) / "docs"
    out.mkdir(parents=True, exist_ok=True)
    docs = load_docs(args.docs, args.limit)
    for n, doc in enumerate(docs, 1):
        target = out / f"{doc['doc_index']}.json"
        if target.exists():
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".fr.txt", encoding="utf-8", delete=False) as f:
            f.write("\n\n".join(doc["fr"]) + "\n")
            source = f.name
        step = "run" if args.summary else "translate"
        command = [args.precis, "-q", step, source, "--format", "json"] + args.precis_args
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.monotonic() - started
        os.unlink(source)
        if done.returncode != 0:
            sys.exit(f"doc_eval: {doc['docid']}: precis exited {done.returncode}: {done.stderr.strip()}")
        report = json.loads(done.stdout)
        paragraphs = report["translation"]["paragraphs"]
        if len(paragraphs) != len(doc["fr"]):
            sys.exit(f"doc_eval: {doc['docid']}: {len(paragraphs)} paragraphs for {len(doc['fr'])} lines")
        result = {"doc_index": doc["doc_index"], "docid": doc["docid"], "wall_s": wall, "report": report}
        tmp = target.with_suffix(".part")
        tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        tmp.rename(target)
        print(f"doc_eval: {n}/{len(docs)} {doc['docid']}: {len(paragraphs)} lines, {wall:.1f} s", file=sys.stderr)


def sacrebleu_scores(sacrebleu, hyps, refs):
    with tempfile.TemporaryDirectory() as tmp:
        hyp, ref = pathlib.Path(tmp, "hyp"), pathlib.Path(tmp, "ref")
        hyp.write_text("\n".join(hyps) + "\n", encoding="utf-8")
        ref.write_text("\n".join(refs) + "\n", encoding="utf-8")
        done = subprocess.run(
            [sacrebleu, str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "-w", "2", "-f", "json"],
            capture_output=True, text=True, check=True)
        scores = {s["name"]: s["score"] for s in json.loads(done.stdout)}
        return scores["BLEU"], scores["chrF2"]


def score(args):
    out = pathlib.Path(args.out)
    docs = load_docs(args.docs, None)
    hyps, refs, srcs = [], [], []
    summaries = []
    reported = collections.Counter()
    repairs = collections.Counter()
    wall = 0.0
    finished = 0
    for doc in docs:
        path = out / "docs" / f"{doc['doc_index']}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        finished += 1
        wall += result["wall_s"]
        report = result["report"]
        hyps += [p.replace("\n", " ") for p in report["translation"]["paragraphs"]]
        refs += doc["en"]
        srcs += doc["fr"]
        reported.update(f["kind"] for f in report["fidelity"] if f["stage"] == "translation")
        abstractive = (report.get("summary") or {}).get("abstractive")
        if abstractive:
            summary_findings = [f for f in report["fidelity"] if f["stage"] == "summary"]
            summaries.append((doc, abstractive, summary_findings, report["translation"]["paragraphs"]))
        for paragraph in report["translation"]["details"]:
            for repair in paragraph.get("repairs", []):
                repairs["kept" if repair["kept"] else "dropped"] += 1
    if not finished:
        sys.exit("doc_eval: no finished article under " + str(out))
    bleu, chrf = sacrebleu_scores(args.sacrebleu, hyps, refs)
    pairs = "".join(json.dumps({"fr": s, "en": h}, ensure_ascii=False) + "\n" for s, h in zip(srcs, hyps))
    checked = subprocess.run([args.checker], input=pairs, capture_output=True, text=True, check=True)
    rechecked = collections.Counter(
        f["kind"] for line in checked.stdout.splitlines() for f in json.loads(line))
    summary = {
        "articles": finished,
        "lines": len(hyps),
        "bleu": bleu,
        "chrf": chrf,
        "wall_s": round(wall, 1),
        "findings_reported": dict(sorted(reported.items())),
        "findings_reported_total": sum(reported.values()),
        "findings_one_checker": dict(sorted(rechecked.items())),
        "findings_one_checker_total": sum(rechecked.values()),
        "repairs": dict(repairs),
    }
    if summaries:
        summary["summaries"] = summary_figures(summaries)
        write_summaries(out / "summaries.md", summaries)
    (out / "hyp.en").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


def summary_figures(summaries):
    props = [a["properties"] for _, a, _, _ in summaries]
    sentences = sum(p["sentences"] for p in props)
    kinds = collections.Counter(f["kind"] for _, _, findings, _ in summaries for f in findings)
    return {
        "articles": len(props),
        "in_form": sum(1 for _, a, _, _ in summaries if not any("asked" in s or "at most" in s for s in a.get("shortcomings", []))),
        "sentences": sentences,
        "supported": sentences - sum(p["unsupported"] for p in props),
        "near_copies": sum(p["near_copies"] for p in props),
        "findings": dict(sorted(kinds.items())),
        "meet_every_check": sum(1 for _, a, _, _ in summaries if not a.get("shortcomings")),
        "routes": dict(collections.Counter(a["route"] for _, a, _, _ in summaries)),
    }


def write_summaries(path, summaries):
    lines = ["# Summaries, for reading attribution by hand", "",
             "Each summary sentence with the paragraphs of the translation that hold its supports.", ""]
    for doc, abstractive, findings, paragraphs in summaries:
        lines += [f"## {doc['docid']} (article {doc['doc_index']})", "", abstractive["text"], ""]
        for finding in findings:
            lines.append(f"- finding ({finding['kind']}): {finding['problem']}: {finding.get('output_text', '')!r}")
        for n, sentence in enumerate(abstractive["sentences"], 1):
            lines.append(f"- sentence {n}: {sentence['text']!r}")
            for support in sentence.get("support", []):
                where = f"{support['paragraph'] + 1}.{support['sentence'] + 1}"
                lines.append(f"  - {support['similarity']:.3f} [{where}] {paragraphs[support['paragraph']]!r}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--precis", default=str(ROOT / "target/release/precis"))
    r.add_argument("--out", required=True)
    r.add_argument("--docs", default=str(DOCS))
    r.add_argument("--limit", type=int, help="the first N articles only")
    r.add_argument("--summary", action="store_true", help="precis run (translation and summary) instead of translate")
    r.add_argument("precis_args", nargs="*", help="after --: passed to precis (default: --translator llm)")
    s = sub.add_parser("score")
    s.add_argument("--out", required=True)
    s.add_argument("--docs", default=str(DOCS))
    s.add_argument("--checker", default=str(ROOT / "target/release/examples/fidelity_check"))
    s.add_argument("--sacrebleu", default=os.environ.get("SACREBLEU", "/work/venv-eval/bin/sacrebleu"))
    args = parser.parse_args()
    if args.command == "run":
        args.precis_args = args.precis_args or ["--translator", "llm"]
        run(args)
    else:
        score(args)


if __name__ == "__main__":
    main()
