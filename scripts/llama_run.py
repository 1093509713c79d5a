#!/usr/bin/env python3
"""Run chat requests greedily through llama.cpp (llama-cpp-python) and report timings as JSON.

Reference runner for speed/quality comparisons with precis on the same prompts.

Usage:

    /work/venv-llama/bin/python scripts/llama_run.py \
        --model "$(precis models path qwen2.5-coder-0.5b-instruct)" \
        --requests requests.json [--threads 2] [--max-tokens N] [--n-ctx 4096] \
        [--warmup] [--no-mmap] [--pretty] [--parallel N]

requests.json (use "-" to read it from stdin):

    [
      {"name": "translate-p1",
       "messages": [{"role": "system", "content": "You are a professional translator. ..."},
                    {"role": "user", "content": "À la mi-août 2025, ..."}],
       "max_tokens": 256}
    ]

What it does:

* Loads the GGUF once (timed: ``load_ms``; by default llama.cpp mmaps the file,
  pass --no-mmap to read it into memory instead, like a loader that copies
  weights).
* For each request: renders the messages with the GGUF's own chat template
  (metadata ``tokenizer.chat_template``) through llama-cpp-python's
  Jinja2ChatFormatter with add_generation_prompt=True, tokenizes the result
  with special tokens parsed (add_bos=False), clears the KV cache (no prefix
  reuse between requests), and decodes greedily with llama.cpp's sampler chain
  (temperature 0 -> greedy, top_k=1, repeat/frequency/presence penalties off)
  until an end-of-generation token (``<|im_end|>``/``<|endoftext|>`` for Qwen)
  or ``max_tokens`` generated tokens.
* ``--max-tokens N`` overrides every request's ``max_tokens``; requests without
  one default to 256.  max_tokens is clamped so prompt + output fits in n_ctx.
* ``--parallel N`` (N > 1) decodes up to N requests at once as parallel sequences of one
  context (llama.cpp's batch API: one ``llama_decode`` per step with a token of each running
  sequence, each with its own sequence id and KV cells; ``n_seq_max`` N, ``n_ctx`` per
  sequence): when one ends, the next request's prompt is decoded alone and it joins, as
  precis' continuous batching does. Greedy by argmax of each sequence's logits. Totals then
  give ``wall_ms`` for the set, ``prompt_ms`` (the prompt decodes), ``generate_ms`` (the rest
  of the wall time) and ``generated_tokens_per_s`` = tokens after each request's first over
  ``generate_ms``, counted as precis counts them (the end token included).

Output (stdout, JSON; diagnostics go to stderr):

    {
      "llama_cpp_python_version", "system_info", "model": {file, size_bytes},
      "params": {n_threads, n_ctx, n_batch, use_mmap, warmup, sampling},
      "load_ms",
      "requests": [ {name, prompt_tokens, generated_tokens, stop_reason,
                     prompt_ms, generate_ms, first_token_ms, wall_ms,
                     prompt_tokens_per_s, generated_tokens_per_s,
                     llama_perf: {t_p_eval_ms, t_eval_ms, n_p_eval, n_eval},
                     text} ],
      "totals": {prompt_tokens, generated_tokens, prompt_ms, generate_ms,
                 prompt_tokens_per_s, generated_tokens_per_s, wall_ms,
                 wall_ms_including_load},
      "load_average_1m": {start, end},
      "peak_rss_mib"
    }

Timing definitions:

* ``prompt_ms`` / ``generate_ms`` come from llama.cpp's own perf counters
  (``llama_perf_context``: ``t_p_eval_ms`` = batched prompt decode,
  ``t_eval_ms`` = single-token decodes), reset before each request.  They
  cover model compute only (not sampling, detokenization or Python overhead).
* ``generated_tokens`` counts the tokens of the answer, not the end token.
  Each generated token except the last one sampled is fed back through a
  single-token decode, so ``llama_perf.n_eval`` is normally
  ``generated_tokens`` (when stopped by the end token) or
  ``generated_tokens - 1`` (when stopped by max_tokens).
  ``generated_tokens_per_s`` = ``n_eval / generate_ms``, i.e. decode speed.
* ``first_token_ms`` and ``wall_ms`` are Python wall-clock times for the whole
  request (template rendering + tokenization + decode + sampling).
* ``peak_rss_mib`` is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (includes
  touched pages of the mmapped model).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

DEFAULT_MAX_TOKENS = 256


def die(msg: str) -> "NoReturn":  # type: ignore[name-defined]
    print(f"llama_run.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_requests(path: str) -> List[Dict[str, Any]]:
    try:
        raw = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        data = json.loads(raw)
    except (OSError, json.JSONDecodeError) as e:
        die(f"cannot read requests from {path}: {e}")
    if not isinstance(data, list) or not data:
        die("requests file must be a non-empty JSON list")
    seen = set()
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            die(f"request #{i} is not an object")
        name = r.get("name", f"request-{i}")
        if not isinstance(name, str):
            die(f"request #{i}: name must be a string")
        if name in seen:
            die(f"duplicate request name {name!r}")
        seen.add(name)
        r["name"] = name
        msgs = r.get("messages")
        if not isinstance(msgs, list) or not msgs:
            die(f"request {name!r}: messages must be a non-empty list")
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                die(f"request {name!r}: each message needs string 'role' and 'content'")
            if m["role"] not in ("system", "user", "assistant"):
                die(f"request {name!r}: unsupported role {m['role']!r}")
        mt = r.get("max_tokens", DEFAULT_MAX_TOKENS)
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            die(f"request {name!r}: max_tokens must be a positive integer")
        r["max_tokens"] = mt
    return data


def make_formatter(llm: Llama) -> Jinja2ChatFormatter:
    """Same construction as Llama.__init__ for the GGUF's 'chat_template.default'."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        die("the GGUF has no tokenizer.chat_template metadata")
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
        add_generation_prompt=True,
        stop_token_ids=[eos_id],
    )


def perf(llm: Llama) -> Dict[str, Any]:
    d = llama_cpp.llama_perf_context(llm._ctx.ctx)
    return {
        "t_p_eval_ms": d.t_p_eval_ms,
        "t_eval_ms": d.t_eval_ms,
        "n_p_eval": d.n_p_eval,
        "n_eval": d.n_eval,
    }


def rate(n: float, ms: float) -> Optional[float]:
    return round(n / (ms / 1000.0), 3) if ms > 0 else None


def run_one(llm: Llama, fmt: Jinja2ChatFormatter, req: Dict[str, Any], max_tokens: int, n_ctx: int) -> Dict[str, Any]:
    vocab = llm._model.vocab
    t0 = time.perf_counter()
    prompt = fmt(messages=req["messages"]).prompt
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    warnings: List[str] = []
    if len(ids) >= n_ctx:
        return {"name": req["name"], "error": f"prompt has {len(ids)} tokens, n_ctx is {n_ctx}"}
    if len(ids) + max_tokens > n_ctx:
        warnings.append(f"max_tokens clamped from {max_tokens} to {n_ctx - len(ids)} to fit n_ctx")
        max_tokens = n_ctx - len(ids)

    # Fresh state: no KV prefix reuse from a previous request.
    # (n_tokens=0 makes generate() skip prefix matching; eval() then removes
    # every KV cell from position 0 on before decoding the prompt.)
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)

    out: List[int] = []
    stop_reason = "max_tokens"
    first_token_ms: Optional[float] = None
    for tok in llm.generate(
        ids,
        temp=0.0,
        top_k=1,
        top_p=1.0,
        min_p=0.0,
        typical_p=1.0,
        repeat_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        reset=True,
    ):
        if first_token_ms is None:
            first_token_ms = (time.perf_counter() - t0) * 1000.0
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            stop_reason = "eog"
            break
        out.append(int(tok))
        if len(out) >= max_tokens:
            break
    wall_ms = (time.perf_counter() - t0) * 1000.0
    p = perf(llm)
    text = llm.detokenize(out, special=False).decode("utf-8", errors="replace")
    res: Dict[str, Any] = {
        "name": req["name"],
        "prompt_tokens": len(ids),
        "generated_tokens": len(out),
        "stop_reason": stop_reason,
        "max_tokens": max_tokens,
        "prompt_ms": round(p["t_p_eval_ms"], 3),
        "generate_ms": round(p["t_eval_ms"], 3),
        "first_token_ms": round(first_token_ms or wall_ms, 3),
        "wall_ms": round(wall_ms, 3),
        "prompt_tokens_per_s": rate(p["n_p_eval"], p["t_p_eval_ms"]),
        "generated_tokens_per_s": rate(p["n_eval"], p["t_eval_ms"]),
        "llama_perf": p,
        "text": text,
    }
    if warnings:
        res["warnings"] = warnings
    return res


def run_parallel(llm: Llama, fmt: Jinja2ChatFormatter, requests: List[Dict[str, Any]],
                 max_tokens: Optional[int], n_ctx: int, n_batch: int, threads: int,
                 parallel: int) -> Dict[str, Any]:
    """Continuous batching over `parallel` sequences of one llama.cpp context."""
    import numpy as np

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx * parallel
    params.n_batch = n_batch
    params.n_ubatch = n_batch
    params.n_seq_max = parallel
    params.n_threads = threads
    params.n_threads_batch = threads
    params.kv_unified = False
    ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
    if not ctx:
        die("cannot create a context with several sequences")
    mem = llama_cpp.llama_get_memory(ctx)
    vocab = llm._model.vocab
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    batch = llama_cpp.llama_batch_init(max(n_batch, parallel), 0, 1)

    def add(token: int, pos: int, seq: int, logits: bool) -> int:
        i = batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens += 1
        return i

    def greedy(i: int) -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
        return int(logits.argmax())

    waiting = list(enumerate(requests))
    results: List[Optional[Dict[str, Any]]] = [None] * len(requests)
    active: Dict[int, Dict[str, Any]] = {}
    prompt_s = 0.0
    t0 = time.perf_counter()

    def finish(seq: int, stop_reason: str) -> None:
        a = active.pop(seq)
        req = requests[a["index"]]
        results[a["index"]] = {
            "name": req["name"], "prompt_tokens": a["prompt_tokens"],
            "generated_tokens": len(a["out"]), "stop_reason": stop_reason,
            "ended": stop_reason == "eog",
            "text": llm.detokenize(a["out"], special=False).decode("utf-8", errors="replace"),
        }

    def step_token(seq: int, token: int) -> None:
        a = active[seq]
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finish(seq, "eog")
        else:
            a["out"].append(token)
            if len(a["out"]) >= a["max_tokens"]:
                finish(seq, "max_tokens")
            else:
                a["next"] = token

    while waiting or active:
        for seq in range(parallel):
            if seq in active or not waiting:
                continue
            index, req = waiting.pop(0)
            ids = llm.tokenize(fmt(messages=req["messages"]).prompt.encode("utf-8"),
                               add_bos=False, special=True)
            if len(ids) >= n_ctx:
                die(f"request {req['name']}: prompt has {len(ids)} tokens, n_ctx is {n_ctx}")
            mt = max_tokens if max_tokens is not None else req["max_tokens"]
            started = time.perf_counter()
            llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
            for start in range(0, len(ids), n_batch):
                batch.n_tokens = 0
                chunk = ids[start:start + n_batch]
                for j, token in enumerate(chunk):
                    last = add(token, start + j, seq, start + j == len(ids) - 1)
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    die(f"llama_decode failed on the prompt of {req['name']}")
            first = greedy(last)
            prompt_s += time.perf_counter() - started
            active[seq] = {"index": index, "prompt_tokens": len(ids), "pos": len(ids),
                           "out": [], "max_tokens": min(mt, n_ctx - len(ids))}
            step_token(seq, first)
        if not active:
            continue
        batch.n_tokens = 0
        rows = {}
        for seq, a in active.items():
            rows[seq] = add(a["next"], a["pos"], seq, True)
            a["pos"] += 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            die("llama_decode failed on a decoding step")
        for seq, i in rows.items():
            step_token(seq, greedy(i))
    wall_s = time.perf_counter() - t0
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    # Tokens as precis counts them (the end token included), less each request's first,
    # which comes with its prompt.
    counted = sum(r["generated_tokens"] + (1 if r["ended"] else 0) for r in results)
    generate_s = wall_s - prompt_s
    return {
        "requests": results,
        "totals": {
            "requests": len(results),
            "errors": 0,
            "prompt_tokens": sum(r["prompt_tokens"] for r in results),
            "generated_tokens": sum(r["generated_tokens"] for r in results),
            "prompt_ms": round(prompt_s * 1000.0, 3),
            "generate_ms": round(generate_s * 1000.0, 3),
            "prompt_tokens_per_s": rate(sum(r["prompt_tokens"] for r in results), prompt_s * 1000.0),
            "generated_tokens_per_s": rate(counted - len(results), generate_s * 1000.0),
            "wall_ms": round(wall_s * 1000.0, 3),
        },
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--requests", required=True, help="requests JSON file, or - for stdin")
    ap.add_argument("--threads", type=int, default=2, help="n_threads and n_threads_batch (default 2)")
    ap.add_argument("--max-tokens", type=int, default=None, help="override every request's max_tokens")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context size (default 4096)")
    ap.add_argument("--n-batch", type=int, default=512, help="prompt batch size (default 512)")
    ap.add_argument("--no-mmap", action="store_true", help="read the model into memory instead of mmapping it")
    ap.add_argument("--warmup", action="store_true", help="run the first request once, untimed, before measuring")
    ap.add_argument("--pretty", action="store_true", help="indent the JSON output")
    ap.add_argument("--parallel", type=int, default=1,
                    help="decode up to N requests at once as parallel sequences (default 1: one after another)")
    args = ap.parse_args(argv)

    if not os.path.isfile(args.model):
        die(f"model not found: {args.model}")
    if args.threads < 1:
        die("--threads must be >= 1")
    if args.max_tokens is not None and args.max_tokens < 1:
        die("--max-tokens must be >= 1")
    requests = load_requests(args.requests)

    loadavg_start = os.getloadavg()
    t_start = time.perf_counter()
    try:
        llm = Llama(
            model_path=args.model,
            # With --parallel the requests run in a context of their own: this one only
            # tokenizes, and is kept small.
            n_ctx=args.n_ctx if args.parallel == 1 else 512,
            n_batch=args.n_batch,
            n_ubatch=args.n_batch,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            n_gpu_layers=0,
            use_mmap=not args.no_mmap,
            logits_all=False,
            seed=0,
            verbose=False,
        )
    except Exception as e:  # llama-cpp-python raises ValueError on load failure
        die(f"failed to load {args.model}: {e}")
    load_ms = (time.perf_counter() - t_start) * 1000.0
    fmt = make_formatter(llm)

    if args.warmup:
        r0 = requests[0]
        run_one(llm, fmt, r0, min(args.max_tokens or r0["max_tokens"], 8), args.n_ctx)

    if args.parallel > 1:
        report = run_parallel(llm, fmt, requests, args.max_tokens, args.n_ctx, args.n_batch,
                              args.threads, args.parallel)
        report.update({
            "llama_cpp_python_version": llama_cpp.__version__,
            "model": {"file": os.path.basename(args.model), "size_bytes": os.path.getsize(args.model)},
            "params": {"n_threads": args.threads, "n_ctx_per_sequence": args.n_ctx,
                       "n_batch": args.n_batch, "parallel": args.parallel,
                       "sampling": "greedy: argmax of each sequence's logits"},
            "load_ms": round(load_ms, 3),
            "load_average_1m": {"start": round(loadavg_start[0], 2), "end": round(os.getloadavg()[0], 2)},
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        })
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2 if args.pretty else None)
        sys.stdout.write("\n")
        return 0

    results = []
    t_req = time.perf_counter()
    for req in requests:
        mt = args.max_tokens if args.max_tokens is not None else req["max_tokens"]
        res = run_one(llm, fmt, req, mt, args.n_ctx)
        print(
            f"[{res['name']}] "
            + (res["error"] if "error" in res else
               f"prompt {res['prompt_tokens']} tok {res['prompt_ms']:.0f} ms, "
               f"gen {res['generated_tokens']} tok {res['generate_ms']:.0f} ms ({res['stop_reason']})"),
            file=sys.stderr,
        )
        results.append(res)
    wall_ms = (time.perf_counter() - t_req) * 1000.0

    ok = [r for r in results if "error" not in r]
    pt = sum(r["prompt_tokens"] for r in ok)
    gt = sum(r["generated_tokens"] for r in ok)
    p_ms = sum(r["llama_perf"]["t_p_eval_ms"] for r in ok)
    g_ms = sum(r["llama_perf"]["t_eval_ms"] for r in ok)
    n_p = sum(r["llama_perf"]["n_p_eval"] for r in ok)
    n_e = sum(r["llama_perf"]["n_eval"] for r in ok)
    report = {
        "llama_cpp_python_version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        "model": {"file": os.path.basename(args.model), "size_bytes": os.path.getsize(args.model)},
        "params": {
            "n_threads": args.threads,
            "n_ctx": args.n_ctx,
            "n_batch": args.n_batch,
            "use_mmap": not args.no_mmap,
            "warmup": args.warmup,
            "max_tokens_override": args.max_tokens,
            "sampling": "greedy: temp 0, top_k 1, no repeat/frequency/presence penalty",
            "chat_template": "GGUF tokenizer.chat_template via Jinja2ChatFormatter, add_generation_prompt=True",
        },
        "load_ms": round(load_ms, 3),
        "requests": results,
        "totals": {
            "requests": len(results),
            "errors": len(results) - len(ok),
            "prompt_tokens": pt,
            "generated_tokens": gt,
            "prompt_ms": round(p_ms, 3),
            "generate_ms": round(g_ms, 3),
            "prompt_tokens_per_s": rate(n_p, p_ms),
            "generated_tokens_per_s": rate(n_e, g_ms),
            "wall_ms": round(wall_ms, 3),
            "wall_ms_including_load": round((time.perf_counter() - t_start) * 1000.0, 3),
        },
        # 1-minute load average before and after: on a 2-core machine anything well above
        # the thread count means other processes competed for the cores and timings are noisy.
        "load_average_1m": {"start": round(loadavg_start[0], 2), "end": round(os.getloadavg()[0], 2)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2 if args.pretty else None)
    sys.stdout.write("\n")
    return 1 if len(ok) != len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
