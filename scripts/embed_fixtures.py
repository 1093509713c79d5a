#!/usr/bin/env python3
"""Reference sentence embeddings for tests/embed_parity.rs, from sentence-transformers.

    python3 -m venv /work/venv-st && /work/venv-st/bin/pip install sentence-transformers
    /work/venv-st/bin/python scripts/embed_fixtures.py \
        "$(precis models path all-minilm-l6-v2 | head -1 | xargs dirname)"

The model is read from the folder precis already cached (config.json, tokenizer.json,
model.safetensors), so no network is needed. sentence-transformers builds all-MiniLM-L6-v2 as
Transformer(max_seq_length=256) + mean pooling + Normalize, the published configuration of the
model (its modules.json), whose files the pip mirror does not carry.
"""

import json
import os
import sys

from sentence_transformers import SentenceTransformer, models

SENTENCES = [
    "The Kremlin said the summit in Alaska was constructive.",
    "Moscow has repeatedly stressed that Kyiv does not seem genuinely interested in peace.",
    "Le président russe Vladimir Poutine a eu des entretiens directs avec Donald Trump.",
    "Short.",
    "In mid-August 2025, the two presidents met in Anchorage, Alaska (United States), to find "
    "a way to resolve the Ukrainian conflict and to restore bilateral relations between Moscow "
    "and Washington; although the summit did not lead to a breakthrough, both sides called it "
    "constructive, and the White House said there was \"a light at the end of the tunnel\".",
    "Gary Locke will be confirmed as Kilmarnock's permanent manager on Friday.",
]


def main():
    folder = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures", "embed", "minilm.json")
    transformer = models.Transformer(folder, max_seq_length=256)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    vectors = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "scripts/embed_fixtures.py (sentence-transformers, mean pooling, normalised)",
        "sentences": [
            {"text": s, "vector": [round(float(x), 5) for x in v]}
            for s, v in zip(SENTENCES, vectors)
        ],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(SENTENCES)} vectors of {len(vectors[0])} to {out}")


if __name__ == "__main__":
    main()
