#!/usr/bin/env python3
"""Calibrates the provenance thresholds of src/summarize/provenance.rs (SUPPORT_THRESHOLD_*).

A summary sentence is "supported" when some article sentence is at least this similar to it.
To choose the threshold we need summary sentences that the article does support and ones it
does not, written by people rather than by our model:

  supported    each reference highlight of a CNN/DailyMail article, against its own article
  unsupported  the same highlight against the sentences of the most similar *other* article
               (same topic, often the same people, but not the same facts)

The score of a highlight is its best cosine similarity over the article's sentences. The
threshold is the one that maximises balanced accuracy (Youden's J) on articles 101-250 of
cnndm-test-frank250, so the ROUGE test set (articles 1-100) is not used to tune anything.

    /work/venv-st/bin/python scripts/calibrate_support.py \
        "$(dirname "$(precis models path all-minilm-l6-v2 | head -1)")"
"""

import json
import math
import os
import re
import sys

import numpy as np
from sentence_transformers import SentenceTransformer, models

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "eval",
                    "summarization", "cnndm-test-frank250.en.jsonl")

# Same list and weighting as src/summarize/tfidf.rs.
STOPWORDS = set("""a an and are as at be been but by for from had has have he her his i in is it
its of on or she that the their them they this to was were which who will with would we you not
no also after said says than there into about more out up so if what when all one can could our
le la les un une des du de d l et est en que qui dans pour par sur au aux ce ces il elle ils
elles se sa son ses ne pas plus a été ont avec mais ou qu""".split())


def split_sentences(text):
    return [s for s in re.split(r"(?<=[.!?'\"’”])\s+(?=[A-Z0-9‘“\"'])", text.strip()) if len(s.split()) >= 4]


def terms(text):
    return [w for w in re.split(r"\W+", text.lower()) if w and w not in STOPWORDS]


class TfIdf:
    def __init__(self, docs):
        self.vocab, df = {}, []
        for d in docs:
            for t in set(terms(d)):
                if t not in self.vocab:
                    self.vocab[t] = len(df)
                    df.append(0)
                df[self.vocab[t]] += 1
        n = len(docs)
        self.idf = [math.log((1 + n) / (1 + f)) + 1 for f in df]
        self.unseen = math.log(1 + n) + 1

    def vector(self, text):
        v = np.zeros(len(self.idf) + 1)
        unseen = {}
        for t in terms(text):
            if t in self.vocab:
                v[self.vocab[t]] += self.idf[self.vocab[t]]
            else:
                unseen[t] = unseen.get(t, 0) + self.unseen
        v[-1] = math.sqrt(sum(w * w for w in unseen.values()))
        norm = np.linalg.norm(v)
        return v / norm if norm else v


def best_threshold(pos, neg):
    best = (0, 0)
    for t in np.arange(0.05, 0.95, 0.01):
        tpr = np.mean(pos >= t)
        fpr = np.mean(neg >= t)
        if tpr - fpr > best[0]:
            best = (tpr - fpr, round(float(t), 2))
    t = best[1]
    return t, float(np.mean(pos >= t)), float(np.mean(neg >= t))


def main():
    folder = sys.argv[1]
    rows = [json.loads(l) for l in open(DATA, encoding="utf-8") if l.strip()][100:]
    transformer = models.Transformer(folder, max_seq_length=256)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")

    arts = []
    for r in rows:
        sents = split_sentences(r["article"])
        highlights = [h for h in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9'\"‘“])", r["reference"].strip()) if h]
        if sents and highlights:
            arts.append((sents, highlights))
    emb_s = [model.encode(s, batch_size=64, convert_to_numpy=True) for s, _ in arts]
    emb_h = [model.encode(h, batch_size=64, convert_to_numpy=True) for _, h in arts]
    centroids = np.stack([e.mean(0) / np.linalg.norm(e.mean(0)) for e in emb_s])
    neighbour = []
    for i in range(len(arts)):
        sims = centroids @ centroids[i]
        sims[i] = -1
        neighbour.append(int(np.argmax(sims)))

    results = {}
    pos, neg = [], []
    for i, j in enumerate(neighbour):
        pos += list((emb_h[i] @ emb_s[i].T).max(1))
        neg += list((emb_h[i] @ emb_s[j].T).max(1))
    results["embedding (all-minilm-l6-v2)"] = (np.array(pos), np.array(neg))

    pos, neg = [], []
    for i, j in enumerate(neighbour):
        for k, other in ((i, pos), (j, neg)):
            tfidf = TfIdf(arts[k][0])
            sv = np.stack([tfidf.vector(s) for s in arts[k][0]])
            for h in arts[i][1]:
                other.append(float((sv @ tfidf.vector(h)).max()))
    results["tf-idf"] = (np.array(pos), np.array(neg))

    print(f"{len(arts)} articles (101-250), {len(results['tf-idf'][0])} highlights\n")
    print("| vectors | supported: median best similarity | unsupported: median | threshold | supported kept | unsupported passed |")
    print("|---|---|---|---|---|---|")
    for name, (p, n) in results.items():
        t, tpr, fpr = best_threshold(p, n)
        print(f"| {name} | {np.median(p):.2f} | {np.median(n):.2f} | {t:.2f} | {tpr:.1%} | {fpr:.1%} |")


if __name__ == "__main__":
    main()
