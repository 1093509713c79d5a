#!/usr/bin/env python3
"""Marian parity fixtures: models with the real MarianMTModel architecture and random weights,
and what Hugging Face transformers does with them.

No opus-mt weights can be fetched on the machines precis is built on, so parity is shown on
models that have the real architecture, the real file layout and real SentencePiece models
(trained here on text from ../shared/eval), with random weights (the tiny one then trained for
400 steps on newstest2013 pairs, so that it ends sentences at varied lengths; a random model
either stops at once or never):

    # the tiny model, committed under tests/fixtures/marian/tiny, and its recorded outputs
    python scripts/marian_fixtures.py tiny

    # the exact opus-mt-fr-en configuration (75M parameters, 59514 tokens; about 300 MB),
    # written to a folder of your choice; only its recorded outputs are committed
    python scripts/marian_fixtures.py full --model-dir /tmp/opus-mt-fr-en-random

    # the real opus-mt-tc-big-fr-en tokenizer (../shared/marian): ids of 597 French lines and
    # the English text of 300 target-side id sequences, as MarianTokenizer gives them
    python scripts/marian_fixtures.py real-tokenizer

The first two write a folder in the hub layout (config.json, generation_config.json, source.spm,
target.spm, vocab.json, tokenizer_config.json, model.safetensors) and a JSON file of
MarianTokenizer ids and texts and MarianMTModel.generate outputs (greedy and beam 4, one
sentence at a time and in one padded batch, with max_new_tokens 40 and 6) for 25 sentences.
Every random choice is seeded. About 10 minutes each on 2 busy
cores.

Install the pinned versions from scripts/requirements-marian.txt into a virtual environment
first (see that file).
"""

import argparse
import io
import json
import random
import sys
from pathlib import Path

import sentencepiece as spm
import torch
import transformers
from transformers import MarianConfig, MarianMTModel, MarianTokenizer

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
REAL_TOKENIZER = ROOT.parent / "shared" / "marian" / "opus-mt-tc-big-fr-en"
FIXTURES = ROOT / "tests" / "fixtures" / "marian"

# Every weight of the random models is drawn with this spread: large enough that the top two
# logits of a step are far apart compared with float rounding (so that parity is a property
# of the code, not luck). The tiny model is then trained briefly (see train_briefly).
WEIGHT_STD = 0.15


def read_lines(path, limit=None):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    return lines[:limit] if limit else lines


def training_text(lang):
    if lang == "fr":
        files = [EVAL / "newstest2013/newstest2013.fr-en.fr", EVAL / "flores200/dev.fra_Latn"]
    else:
        files = [EVAL / "newstest2013/newstest2013.fr-en.en", EVAL / "flores200/dev.eng_Latn"]
    lines = []
    for f in files:
        lines += read_lines(f)
    return lines


def train_spm(lines, vocab_size, normalization):
    """A unigram SentencePiece model as opus-mt has them: <unk>=0, <s>=1, </s>=2."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=0.9995,
        normalization_rule_name=normalization,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=2,
        minloglevel=2,
        # The eval text is small: take as many pieces as it supports, up to vocab_size.
        hard_vocab_limit=False,
    )
    return model.getvalue()


def pieces_of(spm_bytes):
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())], sp


def build_vocab(source_pieces, target_pieces, total_size, dropped):
    """vocab.json as opus-mt has it: </s>=0, <unk>=1, the pieces of both SentencePiece models,
    <pad> last. `dropped` source pieces are left out so that the unknown-piece path is tested;
    filler tokens pad the vocabulary up to `total_size` (the full opus-mt size)."""
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in source_pieces[3:] + target_pieces[3:]:
        if piece not in vocab and piece not in dropped:
            vocab[piece] = len(vocab)
    if total_size is not None:
        n = 0
        while len(vocab) < total_size - 1:
            vocab[f"▁filler{n}"] = len(vocab)
            n += 1
    vocab["<pad>"] = len(vocab)
    return vocab


def tokenizer_sentences():
    """French sentences the tokenizer is checked on: real news text and the awkward cases."""
    news = read_lines(EVAL / "ntrex128/ntrex128.fra", 24)
    awkward = [
        "",
        " ",
        "Bonjour",
        "  Deux  espaces   au milieu, et au début  ",
        "Tabulation\tet\nsaut de ligne",
        "« Guillemets » et ‘apostrophes’ : l’été, c’est « là ».",
        "Espace\u00a0insécable et fine\u202fespace ; ponctuation !",
        "Accents décomposés : e\u0301te\u0301, cafe\u0301",
        "Pleine largeur : ＡＢＣ１２３, ligature ﬁn",
        "Emoji 🙂 et caractères 中文 inconnus ☃",
        "Des balises </s> et <unk> et <pad> dans le texte",
        "</s>",
        "</s> en tête, <pad><pad> collés, et en fin </s>",
        "Sans espaces:x</s>y<unk>z<pad>",
        "Du code HTML : <p>Bonjour</p><br/>",
        ">>fra<< Un code de langue en tête",
        ">>fra<< Deux << chevrons >> et un autre code >>eng<< plus loin",
        "Un code >>eng<< au milieu",
        "Chiffres : 1 234,56 €, 15 août 2025, 09:30, n° 7",
        "M. Poutine et Mme Harris à Anchorage (Alaska).",
        "Ça coûte 3 €… vraiment ?!",
        "ÉTATS-UNIS : LE SOMMET D'ANCHORAGE",
        "Ligne\u2028séparateur et\u0000nul",
    ]
    return news + awkward


def generation_sentences():
    lines = read_lines(EVAL / "flores200/dev.fra_Latn")
    picked = [lines[i] for i in range(0, 400, 17)][:20]
    # Short ones too, so that the batch mixes lengths and padding matters.
    short = ["Bonjour.", "Merci beaucoup !", "Le sommet a eu lieu en Alaska.", "Oui", "Non, jamais."]
    return picked + short


def randomize(model, seed, eos_id, eos_bias):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # fixed sinusoids, not saved: leave them as HF computes them
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=gen))
        bias = torch.randn(model.final_logits_bias.shape, generator=gen)
        # A random model rarely ends a sentence; lift the end token so that outputs of many
        # lengths occur (and the search's end-of-sentence logic is exercised).
        bias[0, eos_id] += eos_bias
        model.final_logits_bias.copy_(bias)


def train_briefly(model, out_dir, steps, seed):
    """A few hundred steps on newstest2013 pairs: a purely random model repeats one token
    forever, a briefly trained one ends its sentences at varied lengths, which is what the
    search's end-of-sentence logic needs to be exercised on."""
    tok = MarianTokenizer.from_pretrained(out_dir)
    fr = read_lines(EVAL / "newstest2013/newstest2013.fr-en.fr", 3000)
    en = read_lines(EVAL / "newstest2013/newstest2013.fr-en.en", 3000)
    pairs = [(f, e) for f, e in zip(fr, en) if len(f) < 200]
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = rng.sample(pairs, 32)
        enc = tok([f for f, _ in batch], text_target=[e for _, e in batch], return_tensors="pt",
                  padding=True, truncation=True, max_length=64)
        enc["labels"][enc["labels"] == tok.pad_token_id] = -100
        loss = model(**enc).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0:
            print(f"training step {step}: loss {loss.item():.2f}", file=sys.stderr)
    model.eval()


def make_model(out_dir, *, dims, vocab_size_target, source_vocab, target_vocab, normalization_target,
               seed, eos_bias, source_drop, train_steps=0):
    out_dir.mkdir(parents=True, exist_ok=True)
    fr = training_text("fr")
    en = training_text("en")
    src_spm = train_spm(fr, source_vocab, "nmt_nfkc")
    tgt_spm = train_spm(en, target_vocab, normalization_target)
    src_pieces, _ = pieces_of(src_spm)
    tgt_pieces, _ = pieces_of(tgt_spm)
    rng = random.Random(seed)
    dropped = set(rng.sample(src_pieces[50:400], source_drop))
    vocab = build_vocab(src_pieces, tgt_pieces, vocab_size_target, dropped)
    pad = vocab["<pad>"]
    (out_dir / "source.spm").write_bytes(src_spm)
    (out_dir / "target.spm").write_bytes(tgt_spm)
    with open(out_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=2)
    with open(out_dir / "tokenizer_config.json", "w") as f:
        json.dump({"source_lang": "fr", "target_lang": "en", "model_max_length": 512,
                   "separate_vocabs": False, "tokenizer_class": "MarianTokenizer"}, f, indent=2)

    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        max_position_embeddings=512,
        pad_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        bos_token_id=0,
        decoder_start_token_id=pad,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        **dims,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    randomize(model, seed, eos_id=0, eos_bias=eos_bias)
    if train_steps:
        train_briefly(model, out_dir, train_steps, seed)
    model.save_pretrained(out_dir)
    # What opus-mt-fr-en's generation_config.json says.
    generation = {
        "bad_words_ids": [[pad]],
        "bos_token_id": 0,
        "decoder_start_token_id": pad,
        "eos_token_id": 0,
        "forced_eos_token_id": 0,
        "max_length": 512,
        "num_beams": 4,
        "pad_token_id": pad,
    }
    with open(out_dir / "generation_config.json", "w") as f:
        json.dump(generation, f, indent=2)
    return out_dir


def record(model_dir, out_json, *, max_new_tokens_cases, extra_cases=()):
    tok = MarianTokenizer.from_pretrained(model_dir)
    model = MarianMTModel.from_pretrained(model_dir).eval()
    torch.set_num_threads(2)

    tokenizer_cases = [tokenizer_case(tok, text) for text in tokenizer_sentences()]

    rng = random.Random(7)
    vocab_size = len(tok.encoder)
    decode_cases = []
    for _ in range(20):
        ids = [rng.randrange(vocab_size) for _ in range(rng.randrange(1, 30))]
        decode_cases.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})

    sentences = generation_sentences()
    generations = []
    cases = [{"num_beams": beams, "max_new_tokens": max_new}
             for beams in (1, 4) for max_new in max_new_tokens_cases]
    cases += extra_cases
    for kwargs in cases:
        beams, max_new = kwargs["num_beams"], kwargs.get("max_new_tokens")
        single = []
        for s in sentences:
            enc = tok([s], return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**enc, **kwargs)
            single.append(strip(out[0].tolist(), tok.pad_token_id))
        enc = tok(sentences, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        batched = [strip(row, tok.pad_token_id) for row in out.tolist()]
        generations.append({
            "num_beams": beams,
            "max_new_tokens": max_new,
            "kwargs": kwargs,
            "unbatched": single,
            "batched": batched,
            "texts": [tok.decode(ids, skip_special_tokens=True) for ids in single],
        })
        lengths = sorted(len(x) for x in single)
        print(f"{kwargs}: lengths {lengths}", file=sys.stderr)

    fixture = {
        "generated_by": "scripts/marian_fixtures.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "sentencepiece": spm.__version__},
        "tokenizer": tokenizer_cases,
        "decode": decode_cases,
        "sentences": sentences,
        "generations": generations,
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")


# What MarianTokenizer reads as a control token when the text spells it; precis keeps it as text.
LITERAL_SPECIALS = ("</s>", "<unk>", "<pad>")


def tokenizer_case(tok, text):
    """MarianTokenizer's ids for `text`, and the text they decode to. Where the text spells a
    control token, precis deliberately differs (docs/engines.md): it keeps the token as text,
    the SentencePiece pieces MarianTokenizer itself gives for text without specials. Such a
    case records both: `ids` (what precis must give) and `hf_ids` (what HF gives)."""
    hf_ids = tok(text)["input_ids"]
    as_text = tok.convert_tokens_to_ids(tok._tokenize(text)) + [tok.eos_token_id]
    case = {"text": text, "ids": as_text, "decoded": tok.decode(as_text, skip_special_tokens=True)}
    if as_text != hf_ids:
        if not any(special in text for special in LITERAL_SPECIALS):
            sys.exit(f"HF's ids differ from its own pieces on a text without specials: {text!r}")
        case["hf_ids"] = hf_ids
    return case


def real_tokenizer_lines():
    """The French lines of the real-tokenizer fixture: FLORES-200 dev, newstest2014 (spread
    over its documents), the demo article's lines, and the awkward cases."""
    flores = read_lines(EVAL / "flores200/dev.fra_Latn")
    newstest = read_lines(EVAL / "newstest2014-fr/newstest2014-fr.fr")
    demo = read_lines(ROOT / "examples/alaska-summit.fr.txt")
    return flores[::3][:270] + newstest[::3][:270] + demo + tokenizer_sentences()


def record_real_tokenizer(out_json):
    tok = MarianTokenizer.from_pretrained(REAL_TOKENIZER)
    source = [tokenizer_case(tok, text) for text in real_tokenizer_lines()]
    english = read_lines(EVAL / "flores200/dev.eng_Latn")[1::7][:140] \
        + read_lines(EVAL / "newstest2014-fr/newstest2014-fr.en")[2::7][:140]
    rng = random.Random(11)
    target = []
    for text in english:
        ids = tok(text_target=text)["input_ids"]
        target.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
    for _ in range(20):
        ids = [rng.randrange(len(tok.encoder)) for _ in range(rng.randrange(1, 40))]
        target.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
    fixture = {
        "generated_by": "scripts/marian_fixtures.py real-tokenizer",
        "versions": {"transformers": transformers.__version__, "sentencepiece": spm.__version__},
        "model": "opus-mt-tc-big-fr-en (../shared/marian/README.md has the files' checksums)",
        "tokenizer": source,
        "decode": target,
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    differing = sum("hf_ids" in case for case in source)
    print(f"{len(source)} French lines ({differing} spell a control token), "
          f"{len(target)} target id sequences", file=sys.stderr)


def strip(ids, pad):
    """Generated ids after the decoder start token, without the batch's trailing padding."""
    ids = ids[1:]
    while ids and ids[-1] == pad:
        ids.pop()
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["tiny", "full", "real-tokenizer"])
    parser.add_argument("--model-dir", type=Path, help="where to write the model (full: required)")
    parser.add_argument("--record-only", action="store_true", help="keep the model, record outputs again")
    args = parser.parse_args()
    if args.which == "real-tokenizer":
        record_real_tokenizer(FIXTURES / "real_tokenizer.json")
    elif args.which == "tiny":
        model_dir = args.model_dir or FIXTURES / "tiny"
        if not args.record_only:
            make_model(model_dir,
                       dims=dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                 decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64),
                       vocab_size_target=None, source_vocab=1000, target_vocab=800,
                       normalization_target="identity", seed=1, eos_bias=0.0, source_drop=12,
                       train_steps=400)
        # The other settings HF's beam search has, which opus-mt does not use but a user may.
        extra = [
            {"num_beams": 4, "max_new_tokens": 40, "length_penalty": 2.0, "early_stopping": True},
            {"num_beams": 4, "max_new_tokens": 40, "length_penalty": 0.5, "early_stopping": "never"},
            {"num_beams": 3, "max_new_tokens": 40, "length_penalty": -1.0},
            {"num_beams": 4, "max_new_tokens": 30, "min_new_tokens": 12},
            {"num_beams": 1, "max_new_tokens": 30, "min_new_tokens": 12},
        ]
        record(model_dir, FIXTURES / "tiny_outputs.json", max_new_tokens_cases=[40, 6],
               extra_cases=extra)
    else:
        if not args.model_dir:
            parser.error("full needs --model-dir (about 300 MB)")
        if not args.record_only:
            make_model(args.model_dir,
                       dims=dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048),
                       vocab_size_target=59514, source_vocab=8000, target_vocab=8000,
                       normalization_target="nmt_nfkc", seed=2, eos_bias=12.5, source_drop=40)
        record(args.model_dir, FIXTURES / "full_outputs.json", max_new_tokens_cases=[40, 6])


if __name__ == "__main__":
    main()
