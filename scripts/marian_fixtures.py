#!/usr/bin/env python3
"""Marian parity fixtures: models with the real MarianMTModel architecture and random weights,
and what Hugging Face transformers does with them.

No opus-mt weights can be fetched on the machines precis is built on, so parity is shown on
models that have the real architecture and file layout, with random weights:

    # the tiny model, committed under tests/fixtures/marian/tiny, and its recorded outputs;
    # SentencePiece models trained here on ../shared/eval text, weights trained for 400 steps
    # on newstest2013 pairs so that it ends sentences at varied lengths
    python scripts/marian_fixtures.py tiny

    # the exact opus-mt-fr-en configuration (75M parameters, 59514 tokens, swish, </s> = 0;
    # about 300 MB), SentencePiece models trained here, written to a folder of your choice;
    # only its recorded outputs (tests/fixtures/marian/full_outputs.json) are committed
    python scripts/marian_fixtures.py full --model-dir /work/models/opus-mt-fr-en-random

    # the exact opus-mt-tc-big-fr-en configuration with its released config, generation config
    # and tokenizer files from ../shared/marian (230M parameters, relu, </s> = 43311; about
    # 460 MB), weights saved in float16 as released; only its recorded outputs
    # (tests/fixtures/marian/tc_big_outputs.json) are committed
    python scripts/marian_fixtures.py tc-big --model-dir /work/models/tc-big-random

    # the real opus-mt-tc-big-fr-en tokenizer (../shared/marian): ids of 597 French lines and
    # the English text of 300 target-side id sequences, as MarianTokenizer gives them
    python scripts/marian_fixtures.py real-tokenizer

The first three write a folder in the hub layout (config.json, generation_config.json,
source.spm, target.spm, vocab.json, tokenizer_config.json, model.safetensors) and a JSON file of
MarianTokenizer ids and texts and MarianMTModel.generate outputs (greedy and beam 4, one
sentence at a time and in one padded batch, with max_new_tokens 40 and 6) for 25 sentences,
computed in float32 whatever the weights are stored in. The two full-size models' weights are
drawn so that their outputs vary (randomize_varied says how); their recording prints, for
greedy and beam 4 at 40 new tokens, the spread of output lengths, how many sentences ended with
the end token and on how many beam 4 differs from greedy, and stops without writing the
fixture if beam 4 equals greedy on more than half the sentences, or if fewer than 5 sentences
end before the limit. --record-only keeps the model and records again. Every random choice is
seeded. On 2 idle cores, making and recording take about 2.5 minutes for full, 6 for tc-big.

Install the pinned versions from scripts/requirements-marian.txt into a virtual environment
first (see that file).
"""

import argparse
import io
import json
import random
import shutil
import sys
import time
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


# How the full-size models are drawn (randomize_varied): the spread of the logits, and the gain
# of each kind of linear layer (its weights have std gain / sqrt(fan_in)).
LOGIT_STD = 2.0
GAINS = {"q_proj": 1.5, "k_proj": 1.5, "cross_v_proj": 0.5, "cross_out_proj": 0.5}
# Seeds and end-token biases of the two full-size models, chosen so that sentences end at many
# lengths, some before max_new_tokens 40 and some cut by it (record checks it).
FULL_SEED, FULL_EOS_BIAS = 2, 7.2
TC_BIG_SEED, TC_BIG_EOS_BIAS = 3, 7.8


def randomize_varied(model, seed, *, eos_id, eos_bias, quiet_ids=()):
    """Random weights whose generations vary, for the full-size models. Drawn as `randomize`
    draws them, such a model says one token forever (or nothing) and beam search finds what
    greedy finds, which proves nothing about the search. Here:

    * every linear layer keeps the scale of its input (std gain / sqrt(fan_in)), so that no
      sublayer drowns the others and each step depends on the tokens before it, its position
      and the source;
    * fc2's columns are centred: the activation's positive mean would otherwise add the same
      vector at every position, and every step would say the same word;
    * layer norm weights have random signs: with tied embeddings, the previous token's
      embedding, carried along the residual stream, would otherwise score itself highest and
      the model would repeat it;
    * cross-attention values at half gain: the source shifts the output, it does not fix it;
    * embeddings N(0, LOGIT_STD / sqrt(d_model)), so logits spread about LOGIT_STD: flat enough
      that beam search finds better paths than greedy, and the top two of a step far apart
      compared with float rounding;
    * the end token's embedding row at 0.3 and its logit bias `eos_bias`: its logit then
      varies little from sentence to sentence, and sentences end at many lengths instead of
      all at once or never;
    * `quiet_ids` (the filler tokens) at half scale, so that outputs are pieces of the target
      SentencePiece model rather than fillers.
    """
    gen = torch.Generator().manual_seed(seed)
    d_model = model.config.d_model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # fixed sinusoids, not saved: leave them as HF computes them
            if name.endswith("layer_norm.weight"):
                signs = torch.randint(0, 2, p.shape, generator=gen) * 2 - 1
                p.copy_(signs * (1.0 + 0.1 * torch.randn(p.shape, generator=gen)))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 2 and "embed" not in name and "shared" not in name:
                kind = name.split(".")[-2]
                gain = GAINS.get(("cross_" if "encoder_attn." in name else "") + kind, GAINS.get(kind, 1.0))
                w = gain / p.shape[1] ** 0.5 * torch.randn(p.shape, generator=gen)
                if kind == "fc2":
                    w -= w.mean(dim=1, keepdim=True)
                p.copy_(w)
            else:  # the shared embeddings (tied to the output projection)
                p.copy_(LOGIT_STD / d_model ** 0.5 * torch.randn(p.shape, generator=gen))
        embeddings = model.get_input_embeddings().weight
        embeddings[eos_id] *= 0.3
        if quiet_ids:
            embeddings[list(quiet_ids)] *= 0.5
        bias = 0.5 * torch.randn(model.final_logits_bias.shape, generator=gen)
        bias[0, eos_id] = eos_bias
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
               seed, eos_bias, source_drop, train_steps=0, varied=False):
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
    if varied:
        fillers = [i for piece, i in vocab.items() if piece.startswith("▁filler")]
        randomize_varied(model, seed, eos_id=0, eos_bias=eos_bias, quiet_ids=fillers)
    else:
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


# The files of opus-mt-tc-big-fr-en that the tc-big model takes as they are.
TC_BIG_FILES = ("config.json", "generation_config.json", "source.spm", "target.spm", "vocab.json",
                "tokenizer_config.json", "special_tokens_map.json")


def make_tc_big(out_dir, *, seed, eos_bias):
    """opus-mt-tc-big-fr-en with random weights: its config.json, generation_config.json and
    tokenizer files as released (../shared/marian), weights drawn by randomize_varied and
    saved in float16 as the released ones are (config.json says so: torch_dtype float16)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TC_BIG_FILES:
        shutil.copyfile(REAL_TOKENIZER / name, out_dir / name)
    config = MarianConfig.from_pretrained(out_dir)
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    randomize_varied(model, seed, eos_id=config.eos_token_id, eos_bias=eos_bias)
    model.half().save_pretrained(out_dir)
    # save_pretrained rewrote these two: put the released ones back.
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(REAL_TOKENIZER / name, out_dir / name)
    return out_dir


def describe_search(generations, eos, limit=40):
    """The figures that show whether a fixture exercises the search: at `limit` new tokens,
    for greedy and beam 4, the spread of output lengths and how many sentences chose the end
    token before the limit; and on how many sentences beam 4 differs from greedy."""
    by_beams = {g["num_beams"]: g["unbatched"] for g in generations
                if g["max_new_tokens"] == limit and set(g["kwargs"]) == {"num_beams", "max_new_tokens"}}
    lines, ended = [], {}
    for beams, outputs in sorted(by_beams.items()):
        lengths = sorted(len(ids) for ids in outputs)
        ended[beams] = sum(1 for ids in outputs if len(ids) < limit and ids[-1] == eos)
        lines.append(f"beams {beams}, max_new_tokens {limit}: lengths {lengths[0]}..{lengths[-1]} "
                     f"(median {lengths[len(lengths) // 2]}), {ended[beams]} of {len(outputs)} "
                     f"ended with the end token before the limit, "
                     f"{sum(len(ids) == limit for ids in outputs)} cut")
    differ = sum(a != b for a, b in zip(by_beams[1], by_beams[4]))
    lines.append(f"beam 4 differs from greedy on {differ} of {len(by_beams[1])} sentences")
    return lines, differ, ended


def check_search(generations, eos, limit=40):
    """Fails loudly if a full-size fixture would prove little about beam search."""
    lines, differ, ended = describe_search(generations, eos, limit)
    for line in lines:
        print(line, file=sys.stderr)
    n = len(generations[0]["unbatched"])
    problems = []
    if 2 * (n - differ) > n:
        problems.append(f"beam 4 equals greedy on {n - differ} of {n} sentences")
    problems += [f"only {count} sentences end before the limit with {beams} beam(s)"
                 for beams, count in ended.items() if count < 5]
    if problems:
        sys.exit("the outputs do not exercise the search: " + "; ".join(problems)
                 + " (fixture not written)")


def record(model_dir, out_json, *, max_new_tokens_cases, extra_cases=(), check=False):
    tok = MarianTokenizer.from_pretrained(model_dir)
    # float32 whatever the weights are stored in (transformers 5 would otherwise compute in the
    # float16 of tc-big's config): precis computes in f32 from the same rounded weights.
    model = MarianMTModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    torch.set_num_threads(2)
    # generate warns at every call that max_new_tokens overrides generation_config's max_length.
    transformers.logging.set_verbosity_error()

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
             for max_new in max_new_tokens_cases for beams in (1, 4)]
    cases += extra_cases
    started = time.time()
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
        print(f"{kwargs}: lengths {lengths} ({time.time() - started:.0f} s)", file=sys.stderr)
        if check and len(generations) == 2:
            check_search(generations, model.generation_config.eos_token_id, max_new_tokens_cases[0])

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
    parser.add_argument("which", choices=["tiny", "full", "tc-big", "real-tokenizer"])
    parser.add_argument("--model-dir", type=Path, help="where to write the model (full, tc-big: required)")
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
    elif args.which == "tc-big":
        if not args.model_dir:
            parser.error("tc-big needs --model-dir (about 460 MB)")
        started = time.time()
        if not args.record_only:
            make_tc_big(args.model_dir, seed=TC_BIG_SEED, eos_bias=TC_BIG_EOS_BIAS)
            print(f"model made in {time.time() - started:.0f} s", file=sys.stderr)
        record(args.model_dir, FIXTURES / "tc_big_outputs.json", max_new_tokens_cases=[40, 6], check=True)
        print(f"done in {time.time() - started:.0f} s", file=sys.stderr)
    else:
        if not args.model_dir:
            parser.error("full needs --model-dir (about 300 MB)")
        started = time.time()
        if not args.record_only:
            make_model(args.model_dir,
                       dims=dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048),
                       vocab_size_target=59514, source_vocab=8000, target_vocab=8000,
                       normalization_target="nmt_nfkc", seed=FULL_SEED, eos_bias=FULL_EOS_BIAS,
                       source_drop=40, varied=True)
            print(f"model made in {time.time() - started:.0f} s", file=sys.stderr)
        record(args.model_dir, FIXTURES / "full_outputs.json", max_new_tokens_cases=[40, 6], check=True)
        print(f"done in {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
