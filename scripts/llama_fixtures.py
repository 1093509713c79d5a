#!/usr/bin/env python3
"""Generate llama.cpp reference fixtures for precis' Rust tests.

Usage (from the repository root, with the venv from scripts/requirements-llama.txt):

    /work/venv-llama/bin/python scripts/llama_fixtures.py \
        --model-05 "$(precis models path qwen2.5-coder-0.5b-instruct)" \
        --model-15 "$(precis models path qwen2.5-coder-1.5b-instruct)" \
        --out tests/fixtures/llm

Writes three JSON files into --out:

* chatml_tokens.json  -- the GGUF's own chat template (metadata
  `tokenizer.chat_template`) rendered exactly like llama-cpp-python's
  Jinja2ChatFormatter (add_generation_prompt=True) for a handful of message
  lists, with the ids of `Llama.tokenize(rendered, add_bos=False,
  special=True)`; plus a list of plain strings tokenized with special=False
  (so "<|im_start|>" etc. come out as ordinary text).  Uses the 1.5B GGUF and
  records whether the 0.5B GGUF's tokenizer gives identical ids.
* greedy_qwen05.json  -- greedy (argmax, no sampling, no penalties) decode of a
  translation prompt with the 0.5B GGUF, n_ctx=4096, n_threads=2, recording
  for every step the top-5 (token id, logit) of llama.cpp's logits.
* greedy_qwen15.json  -- the same with the 1.5B GGUF.

The greedy loop uses the low-level API: the prompt is evaluated in one batch
(`Llama.eval`), then each chosen token is evaluated on its own; after every
eval the last row of logits (`llama_get_logits_ith(ctx, -1)`) is read, so the
recorded logits are exactly the ones that picked each token.  The chosen
token is `argmax` (lowest id wins a tie, as numpy does).  The run is then
cross-checked against llama.cpp's own greedy sampler (`Llama.generate` with
temp=0, top_k=1, repeat_penalty=1.0) and must produce the same ids.

Pass --check-determinism to run every greedy decode twice in the same process
and fail if ids or logits differ.  Rerunning the whole script into another
directory and `diff -r`-ing the output is the stronger check (see
scripts/README-llama.md).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

N_THREADS = 2

EXPECTED_SHA256 = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
}

TRANSLATOR_SYSTEM = (
    "You are a professional translator. Translate the user's French text into "
    "English. Output only the translation."
)

# Two consecutive lines of examples/alaska-summit.fr.txt (kept verbatim here so
# the fixture does not silently change if the example file is edited).
GREEDY_PARAGRAPH = (
    "À la mi-août 2025, le président russe Vladimir Poutine a eu des entretiens "
    "directs avec le président américain Donald Trump à Anchorage, en Alaska "
    "(États-Unis), pour trouver un moyen de résoudre le conflit ukrainien, ainsi "
    "que de rétablir les relations bilatérales entre Moscou et Washington.\n"
    "Bien que le sommet n'ait pas abouti à des avancées, les deux parties ont "
    "salué la réunion comme constructive, la Maison Blanche déclarant qu'il y "
    "avait « une lumière au bout du tunnel et une chance de paix durable »."
)

GREEDY_MESSAGES = [
    {"role": "system", "content": TRANSLATOR_SYSTEM},
    {"role": "user", "content": GREEDY_PARAGRAPH},
]

CHAT_CASES: List[Dict[str, Any]] = [
    {
        "name": "system_user",
        "messages": [
            {"role": "system", "content": TRANSLATOR_SYSTEM},
            {"role": "user", "content": "Le sommet s'est tenu à Anchorage."},
        ],
    },
    {
        # Qwen2.5's template inserts its default system prompt here.
        "name": "user_only",
        "messages": [
            {"role": "user", "content": "Résume cet article en trois phrases."},
        ],
    },
    {
        "name": "multi_turn",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Traduis : « Bonjour »."},
            {"role": "assistant", "content": "\"Hello\"."},
            {"role": "user", "content": "Et maintenant : « Au revoir » ?"},
        ],
    },
    {
        "name": "french_typography",
        "messages": [
            {"role": "system", "content": TRANSLATOR_SYSTEM},
            {
                "role": "user",
                "content": (
                    "La semaine dernière, M. Peskov a également déclaré que le "
                    "président Poutine était toujours prêt à recevoir le président "
                    "Trump à Moscou à l’invitation lancée après le sommet de "
                    "l’Alaska.\nLe porte-parole du Kremlin, Dmitri Peskov, a "
                    "déclaré le 7 octobre que la Russie espérait « la volonté "
                    "politique ».\n\nÉté 2025 : 1 117 320 768 octets, 3,5 %."
                ),
            },
        ],
    },
    {
        "name": "emoji_url_quote_marker",
        "messages": [
            {
                "role": "user",
                "content": (
                    ">>> Les lecteurs sont invités à regarder plus de vidéos 🎥\n"
                    "Source : https://khoahocdoisong.vn/moscow-noi-dong-luc-tu-cuoc-"
                    "gap-thuong-dinh-nga-my-khong-con-nua-post2149059291.html\n"
                    "Comment (0)"
                ),
            },
        ],
    },
    {
        "name": "summarise_whitespace",
        "messages": [
            {
                "role": "system",
                "content": "You summarise news articles in English.\tBe factual.",
            },
            {
                "role": "user",
                "content": (
                    "  Summarise in 2 sentences:\n\n"
                    "In mid-August 2025, Presidents Putin and Trump met in "
                    "Anchorage, Alaska.   Both sides called it constructive.\n\n\n"
                ),
            },
        ],
    },
]

PLAIN_STRINGS: List[str] = [
    "Bonjour, le monde !",
    "À la mi-août 2025, le président russe Vladimir Poutine a eu des entretiens directs.",
    "« une lumière au bout du tunnel » et l’apostrophe typographique d’Europe",
    "  leading,   internal    and trailing spaces   ",
    "tab\tseparated\t\tvalues\nnew line\n\n\nthree newlines\r\nCRLF",
    "1 117 320 768 octets et 3,5 % de croissance",
    "1\u202f117\u202f320\u202f768 et 3,5\u00a0% (espaces insécables)",
    "2025-08-15 12:30:45.678 — 0.5B vs 1.5B, x=42, 007",
    "Москва, 北京, Αθήνα, القاهرة, Hà Nội, 東京タワー",
    "Emoji: 🎥👍🏽🇫🇷 ok",
    "https://khoahocdoisong.vn/moscow-noi-dong-luc-tu-cuoc-gap-thuong-dinh-nga-my-khong-con-nua-post2149059291.html",
    ">>> Les lecteurs sont invités à regarder plus de vidéos",
    "<|im_start|>system",
    "<|endoftext|>",
    "<|im_end|>\n<|im_start|>assistant\n",
    " Trump",
    "",
]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def model_info(path: str) -> Dict[str, Any]:
    name = os.path.basename(path)
    digest = sha256_file(path)
    info: Dict[str, Any] = {"file": name, "sha256": digest, "size_bytes": os.path.getsize(path)}
    if name in EXPECTED_SHA256:
        info["sha256_matches_expected"] = digest == EXPECTED_SHA256[name]
        if digest != EXPECTED_SHA256[name]:
            print(f"WARNING: sha256 of {name} is {digest}, expected {EXPECTED_SHA256[name]}", file=sys.stderr)
    return info


def load(path: str, n_ctx: int) -> Llama:
    return Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        n_gpu_layers=0,
        logits_all=False,
        flash_attn=False,
        seed=0,
        verbose=False,
    )


def make_formatter(llm: Llama) -> Jinja2ChatFormatter:
    """Build the formatter exactly as Llama.__init__ does for chat_template.default."""
    eos_id = llm.token_eos()
    bos_id = llm.token_bos()
    eos_token = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos_token = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
    return Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"],
        eos_token=eos_token,
        bos_token=bos_token,
        add_generation_prompt=True,
        stop_token_ids=[eos_id],
    )


def render(fmt: Jinja2ChatFormatter, messages: Sequence[Dict[str, str]]) -> str:
    return fmt(messages=list(messages)).prompt


def special_ids(llm: Llama) -> Dict[str, Any]:
    vocab = llm._model.vocab

    def one(text: str) -> int:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert len(ids) == 1, (text, ids)
        return ids[0]

    im_start, im_end, eot_text = one("<|im_start|>"), one("<|im_end|>"), one("<|endoftext|>")
    out: Dict[str, Any] = {
        "n_vocab": llm.n_vocab(),
        "bos": llm._model.token_bos(),
        "eos": llm._model.token_eos(),
        "eot": llm._model.token_eot(),
        "im_start": im_start,
        "im_end": im_end,
        "endoftext": eot_text,
        "add_bos": bool(llm._model.add_bos_token()),
        "is_eog": {
            str(t): bool(llama_cpp.llama_vocab_is_eog(vocab, t)) for t in (im_start, im_end, eot_text)
        },
    }
    out["token_text"] = {str(t): llm._model.token_get_text(t) for t in sorted({out["bos"], out["eos"], out["eot"], im_start, im_end, eot_text}) if t >= 0}
    return out


def template_diff(a: str, b: str) -> List[str]:
    """Unified diff lines (0.5B -> 1.5B) of the two chat templates; empty when equal."""
    return [l.rstrip("\n") for l in difflib.unified_diff(a.splitlines(True), b.splitlines(True), "qwen05", "qwen15", n=0)]


def chatml_fixture(llm15: Llama, llm05: Llama) -> Dict[str, Any]:
    fmt15, fmt05 = make_formatter(llm15), make_formatter(llm05)
    same_template = llm15.metadata.get("tokenizer.chat_template") == llm05.metadata.get("tokenizer.chat_template")
    cases = []
    mismatches: List[str] = []
    for case in CHAT_CASES:
        rendered = render(fmt15, case["messages"])
        ids = llm15.tokenize(rendered.encode(), add_bos=False, special=True)
        r05 = render(fmt05, case["messages"])
        ids05 = llm05.tokenize(r05.encode(), add_bos=False, special=True)
        if r05 != rendered or ids05 != ids:
            mismatches.append(case["name"])
        # Round trip sanity: detokenizing (with specials) gives back the text.
        back = llm15.detokenize(ids, special=True).decode("utf-8")
        assert back == rendered, (case["name"], back, rendered)
        cases.append({"name": case["name"], "messages": case["messages"], "rendered": rendered, "ids": ids})
    plain = []
    for s in PLAIN_STRINGS:
        ids = llm15.tokenize(s.encode(), add_bos=False, special=False)
        ids05 = llm05.tokenize(s.encode(), add_bos=False, special=False)
        if ids05 != ids:
            mismatches.append(f"plain:{s!r}")
        back = llm15.detokenize(ids, special=False).decode("utf-8")
        assert back == s, (s, back)
        plain.append({"text": s, "ids": ids})
    sp15, sp05 = special_ids(llm15), special_ids(llm05)
    return {
        "description": (
            "Chat template rendering (llama-cpp-python Jinja2ChatFormatter, add_generation_prompt=True) "
            "and tokenization (Llama.tokenize, add_bos=False; special=True for chat, special=False for plain)."
        ),
        "llama_cpp_python_version": llama_cpp.__version__,
        "tokenizer_model": os.path.basename(llm15.model_path),
        "special_tokens": sp15,
        "chat_template": llm15.metadata["tokenizer.chat_template"],
        "chat_template_sha256": hashlib.sha256(llm15.metadata["tokenizer.chat_template"].encode()).hexdigest(),
        "render": {"add_generation_prompt": True, "eos_token": fmt15.eos_token, "bos_token": fmt15.bos_token},
        "qwen05_check": {
            "model": os.path.basename(llm05.model_path),
            "same_chat_template": same_template,
            "chat_template_diff": template_diff(llm05.metadata.get("tokenizer.chat_template", ""), llm15.metadata.get("tokenizer.chat_template", "")),
            "same_rendering_for_all_cases": not any(not m.startswith("plain:") for m in mismatches),
            "same_special_tokens": sp05 == sp15,
            "identical_ids": not mismatches and sp05 == sp15,
            "mismatches": mismatches,
        },
        "chat": cases,
        "plain": plain,
    }


def last_logits(llm: Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def top_k(logits: np.ndarray, k: int) -> List[List[Any]]:
    # Stable sort on -logit: ties ordered by ascending id.
    order = np.argsort(-logits, kind="stable")[:k]
    return [[int(i), float(logits[i])] for i in order]


def greedy_once(llm: Llama, prompt_ids: List[int], max_new: int) -> Dict[str, Any]:
    vocab = llm._model.vocab
    llm.reset()
    llm.eval(prompt_ids)
    generated: List[int] = []
    steps: List[Dict[str, Any]] = []
    stopped_on: Optional[int] = None
    for step in range(max_new):
        logits = last_logits(llm)
        tok = int(np.argmax(logits))
        t5 = top_k(logits, 5)
        assert t5[0][0] == tok
        steps.append({"step": step, "chosen": tok, "top5": t5, "margin": t5[0][1] - t5[1][1]})
        generated.append(tok)
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            stopped_on = tok
            break
        llm.eval([tok])
    return {"generated": generated, "steps": steps, "stopped_on": stopped_on}


def sampler_crosscheck(llm: Llama, prompt_ids: List[int], n: int) -> List[int]:
    """llama.cpp's own greedy sampler, for comparison with our argmax loop."""
    llm.reset()
    out: List[int] = []
    vocab = llm._model.vocab
    for tok in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(tok))
        if llama_cpp.llama_vocab_is_eog(vocab, tok) or len(out) >= n:
            break
    return out


def greedy_fixture(path: str, max_new: int, min_before_end: int, check_determinism: bool) -> Dict[str, Any]:
    n_ctx = 4096
    t0 = time.perf_counter()
    llm = load(path, n_ctx)
    load_s = time.perf_counter() - t0
    fmt = make_formatter(llm)
    rendered = render(fmt, GREEDY_MESSAGES)
    prompt_ids = llm.tokenize(rendered.encode(), add_bos=False, special=True)
    t0 = time.perf_counter()
    run = greedy_once(llm, prompt_ids, max_new)
    run_s = time.perf_counter() - t0
    gen = run["generated"]
    n_before_end = len(gen) - (1 if run["stopped_on"] is not None else 0)
    if n_before_end < min_before_end:
        raise SystemExit(f"{os.path.basename(path)}: only {n_before_end} tokens before the end token (< {min_before_end})")
    if check_determinism:
        again = greedy_once(llm, prompt_ids, max_new)
        if again != run:
            raise SystemExit(f"{os.path.basename(path)}: second greedy run in the same process differs")
    cross = sampler_crosscheck(llm, prompt_ids, len(gen))
    if cross != gen:
        raise SystemExit(
            f"{os.path.basename(path)}: llama.cpp greedy sampler disagrees with argmax loop\n{cross}\n{gen}"
        )
    content_ids = gen[:n_before_end]
    text = llm.detokenize(content_ids, special=False).decode("utf-8", errors="replace")
    margins = [s["margin"] for s in run["steps"]]
    min_i = int(np.argmin(margins))
    print(
        f"{os.path.basename(path)}: load {load_s:.1f}s, prompt {len(prompt_ids)} tok, "
        f"generated {len(gen)} tok in {run_s:.1f}s, min margin {margins[min_i]:.4f} at step {min_i}",
        file=sys.stderr,
    )
    return {
        "description": (
            "Greedy decode with llama.cpp via llama-cpp-python low-level API: prompt evaluated in one batch "
            "(Llama.eval), then one token per eval; logits read with llama_get_logits_ith(ctx,-1) after each eval; "
            "chosen = argmax (no sampling, no penalties). 'generated_ids' includes the end token when one was chosen; "
            "'text' is the detokenized ids before it. top5 entries are [token_id, logit] sorted by logit desc "
            "(ties by ascending id); 'margin' = top1 logit - top2 logit."
        ),
        "llama_cpp_python_version": llama_cpp.__version__,
        "model": model_info(path),
        "params": {
            "n_ctx": n_ctx,
            "n_batch": 512,
            "n_ubatch": 512,
            "n_threads": N_THREADS,
            "n_threads_batch": N_THREADS,
            "flash_attn": False,
            "max_new_tokens": max_new,
            "stop": "first token with llama_vocab_is_eog (<|im_end|> or <|endoftext|>)",
            "sampling": "argmax over raw logits; no temperature, top-k/p, repeat or presence penalty",
        },
        "messages": GREEDY_MESSAGES,
        "rendered": rendered,
        "prompt_ids": prompt_ids,
        "generated_ids": gen,
        "stopped_on": run["stopped_on"],
        "n_generated": len(gen),
        "n_generated_before_end": n_before_end,
        "text": text,
        "min_margin": margins[min_i],
        "min_margin_step": min_i,
        "crosscheck_llama_greedy_sampler": "identical ids",
        "steps": run["steps"],
    }


def _is_flat(x: Any) -> bool:
    """Scalars, and lists of scalars or of lists of scalars (ids, [id, logit] pairs)."""
    if isinstance(x, list):
        return all(not isinstance(e, (dict, list)) or (isinstance(e, list) and all(not isinstance(f, (dict, list)) for f in e)) for e in x)
    return not isinstance(x, dict)


def _fmt(x: Any, ind: int) -> str:
    pad, pad1 = " " * ind, " " * (ind + 1)
    if _is_flat(x):
        return json.dumps(x, ensure_ascii=False)
    if isinstance(x, dict):
        if not x:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {_fmt(v, ind + 1)}" for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [pad1 + _fmt(v, ind + 1) for v in x]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def dump(obj: Any, path: str) -> None:
    """JSON with one key per line but flat number lists (ids, [id, logit] pairs) kept on one line."""
    text = _fmt(obj, 0)
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-05", required=True, help="Qwen2.5(-Coder) 0.5B instruct GGUF")
    ap.add_argument("--model-15", required=True, help="Qwen2.5(-Coder) 1.5B instruct GGUF")
    ap.add_argument("--out", required=True, help="output directory, e.g. tests/fixtures/llm")
    ap.add_argument("--max-new-05", type=int, default=256, help="cap on generated tokens, 0.5B (default 256)")
    ap.add_argument("--max-new-15", type=int, default=256, help="cap on generated tokens, 1.5B (default 256)")
    ap.add_argument("--check-determinism", action="store_true", help="run each greedy decode twice and compare")
    ap.add_argument("--only", choices=["chatml", "greedy05", "greedy15"], action="append", help="produce only these files")
    args = ap.parse_args(argv)
    only = set(args.only or ["chatml", "greedy05", "greedy15"])
    os.makedirs(args.out, exist_ok=True)

    if "chatml" in only:
        llm15 = load(args.model_15, 512)
        llm05 = load(args.model_05, 512)
        fx = chatml_fixture(llm15, llm05)
        fx["models"] = [model_info(args.model_15), model_info(args.model_05)]
        dump(fx, os.path.join(args.out, "chatml_tokens.json"))
        print(f"chatml_tokens.json: 0.5B ids identical to 1.5B: {fx['qwen05_check']['identical_ids']}", file=sys.stderr)
        del llm15, llm05
    if "greedy05" in only:
        dump(greedy_fixture(args.model_05, args.max_new_05, 64, args.check_determinism), os.path.join(args.out, "greedy_qwen05.json"))
    if "greedy15" in only:
        dump(greedy_fixture(args.model_15, args.max_new_15, 64, args.check_determinism), os.path.join(args.out, "greedy_qwen15.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
