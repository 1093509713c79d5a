#!/usr/bin/env python3
"""Checks the JSON of `precis run examples/alaska-summit.fr.txt --format json` on real weights.

Fails (exit 1) when a paragraph is missing or empty, when French is left in the translation, when
the names of the article are lost, or when the summary is empty or not English.

Usage: precis run examples/alaska-summit.fr.txt --format json | scripts/smoke_check.py
"""
import json
import re
import sys

FRENCH = {"le", "la", "les", "des", "du", "une", "est", "que", "qui", "dans", "avec", "pour",
          "sur", "pas", "ont", "été", "aux", "ces", "leur", "mais", "ainsi", "depuis"}
ENGLISH = {"the", "of", "and", "to", "in", "that", "was", "has", "with", "for", "on", "is"}
NAMES = ["Putin", "Trump", "Peskov", "Anchorage"]


def words(text):
    return re.findall(r"[a-zà-ÿ]+", text.lower())


def share(text, vocabulary):
    ws = words(text)
    return sum(w in vocabulary for w in ws) / max(len(ws), 1)


def main():
    report = json.load(sys.stdin)
    problems = []
    paragraphs = report["translation"]["paragraphs"]
    if len(paragraphs) != 10:
        problems.append(f"expected 10 paragraphs (7 body + 3 trailer lines), got {len(paragraphs)}")
    for i, text in enumerate(paragraphs[:7]):
        if not text.strip():
            problems.append(f"body paragraph {i + 1} is empty")
        elif share(text, FRENCH) > 0.05 or share(text, ENGLISH) < 0.08:
            problems.append(f"body paragraph {i + 1} does not read as English: {text!r}")
    body = " ".join(paragraphs[:7])
    for name in NAMES:
        if name not in body:
            problems.append(f"the translation lost the name {name}")
    summary = report["summary"]["abstractive"]["text"]
    if len(words(summary)) < 20 or share(summary, ENGLISH) < 0.08 or share(summary, FRENCH) > 0.05:
        problems.append(f"the summary is empty or not English: {summary!r}")
    extractive = report["summary"].get("extractive", [])
    if len(extractive) != 3 or any(s["paragraph"] > 6 for s in extractive):
        problems.append(f"expected 3 key sentences from the 7 body paragraphs: {extractive!r}")
    sentences = report["summary"]["abstractive"].get("sentences", [])
    if not sentences or any("supported" not in s or "support" not in s for s in sentences):
        problems.append(f"the summary sentences lack their provenance: {sentences!r}")
    if not isinstance(report.get("fidelity"), list):
        problems.append("the report has no fidelity list")
    for problem in problems:
        print(f"smoke: FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    t = report["timings"]
    print(f"smoke: ok: 10 paragraphs in English, names kept, summary of {len(words(summary))} words; "
          f"{t['total_ms']} ms, {t['prompt_tokens_per_s']} prompt tok/s, "
          f"{t['generated_tokens_per_s']} generated tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
