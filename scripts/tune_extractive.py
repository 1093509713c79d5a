#!/usr/bin/env python3
"""Chooses the lead weight and MMR balance of the extractive ranking (RankOptions in
src/summarize/rank.rs) on CNN/DailyMail articles 101-250, so that the ROUGE test set
(articles 1-100, scripts/rouge_eval.py) is not used for tuning.

It re-implements the ranking in numpy on sentence-transformers vectors (the same vectors as
precis's, tests/embed_parity.rs) and a plain sentence splitter, so its scores are close to,
not equal to, precis's own; it is for choosing parameters, not for reporting.

    /work/venv-st/bin/python scripts/tune_extractive.py \
        "$(dirname "$(precis models path all-minilm-l6-v2 | head -1)")"
"""

import json
import os
import re
import sys

import numpy as np
from rouge_score import rouge_scorer
from sentence_transformers import SentenceTransformer, models

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "eval",
                    "summarization", "cnndm-test-frank250.en.jsonl")


def split(text):
    return [s for s in re.split(r"(?<=[.!?'\"’”])\s+(?=[A-Z0-9‘“\"'])", text.strip()) if s]


def relevance(v, lead_weight, damping=0.85):
    n = len(v)
    w = np.clip(v @ v.T, 0, None)
    np.fill_diagonal(w, 0)
    rows = w.sum(1, keepdims=True)
    w = np.where(rows > 0, w / np.where(rows > 0, rows, 1), 1.0 / n)
    r = np.full(n, 1.0 / n)
    for _ in range(100):
        nxt = (1 - damping) / n + damping * (r @ w)
        if np.abs(nxt - r).sum() < 1e-6:
            r = nxt
            break
        r = nxt
    lead = 1 / (1 + np.arange(n) / 3)
    return (1 - lead_weight) * r / r.max() + lead_weight * lead


def extract(v, k, lead_weight, lam):
    rel = relevance(v, lead_weight)
    chosen, left = [], list(range(len(v)))
    while len(chosen) < k:
        left = [i for i in left if all(v[i] @ v[j] < 0.95 for j in chosen)]
        if not left:
            break
        score = [lam * rel[i] - (1 - lam) * max([v[i] @ v[j] for j in chosen], default=0) for i in left]
        chosen.append(left.pop(int(np.argmax(score))))
    return sorted(chosen)


def main():
    rows = [json.loads(l) for l in open(DATA, encoding="utf-8") if l.strip()][100:]
    transformer = models.Transformer(sys.argv[1], max_seq_length=256)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    data = []
    for r in rows:
        sents = [s for s in split(r["article"]) if len(s.split()) >= 4]
        if len(sents) >= 3:
            data.append((sents, model.encode(sents, batch_size=64), r["reference"]))
    print(f"{len(data)} articles (101-250); mean ROUGE-1/2/L F1\n")
    print("| lead weight | MMR lambda | R-1 | R-2 | R-L |")
    print("|---|---|---|---|---|")
    for lw in [0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0]:
        for lam in [0.6, 0.7, 0.85, 1.0]:
            s = np.zeros(3)
            for sents, v, ref in data:
                picked = " ".join(sents[i] for i in extract(v, 3, lw, lam))
                sc = scorer.score(ref, picked)
                s += [sc["rouge1"].fmeasure, sc["rouge2"].fmeasure, sc["rougeL"].fmeasure]
            s = 100 * s / len(data)
            print(f"| {lw} | {lam} | {s[0]:.2f} | {s[1]:.2f} | {s[2]:.2f} |")
    lead = np.zeros(3)
    for sents, _, ref in data:
        sc = scorer.score(ref, " ".join(sents[:3]))
        lead += [sc["rouge1"].fmeasure, sc["rouge2"].fmeasure, sc["rougeL"].fmeasure]
    lead = 100 * lead / len(data)
    print(f"| LEAD-3 | | {lead[0]:.2f} | {lead[1]:.2f} | {lead[2]:.2f} |")


if __name__ == "__main__":
    main()
