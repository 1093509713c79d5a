#!/usr/bin/env python3
"""Translation quality of precis against reference translations, with llama.cpp as the
reference point on the same GGUF and exactly the same prompts. `scripts/eval.sh` drives it.

Sentence-level: every line of the French file is one paragraph for precis, so one request
(precis translates each paragraph in its own request). Two steps:

  # 1. translate; resumable (lines already in OUT/SET.MODEL.ENGINE.jsonl are skipped), in
  #    chunks of --chunk lines: precis translates a chunk (--save-requests), then llama.cpp
  #    replays the very same requests, so both engines always cover the same lines
  scripts/translation_eval.py run --set newstest2013 --limit 300 \
      --model qwen2.5-coder-1.5b-instruct --engines precis,llama.cpp --threads 2 \
      --out eval/translation

  # 2. score what finished (BLEU and chrF of the sacrebleu command line, on the lines that
  #    every engine of a set and model has finished), list the suspicious outputs, and write
  #    OUT/scores.md, OUT/scores.json and the hypotheses as plain text (OUT/*.hyp.txt)
  scripts/translation_eval.py score --out eval/translation

Engines: `precis` (`precis translate --translator llm --model MODEL`), `precis-marian`
(`--translator marian --translation-model MODEL`; needs the Marian weights in the cache) and
`llama.cpp` (scripts/llama_run.py in a Python with llama-cpp-python, --llama-python; it needs
the precis run of the same model, whose saved requests it replays).

The llama.cpp side gets the first request precis made for each line, as a plain chat loop
would send it. precis itself retries a line sentence by sentence when a request ends in a
repetition loop or at its token limit; such lines are counted (`retried`) in the report.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_EVAL = os.path.join(ROOT, "..", "shared", "eval")

# name -> (French file, English file), relative to --data
SETS = {
    "flores200-dev": ("flores200/dev.fra_Latn", "flores200/dev.eng_Latn"),
    "newstest2013": ("newstest2013/newstest2013.fr-en.fr", "newstest2013/newstest2013.fr-en.en"),
    "ntrex128": ("ntrex128/ntrex128.fra", "ntrex128/ntrex128.eng"),
}
ENGINES = ("precis", "precis-marian", "llama.cpp")
NO_BREAK_SPACES = ("\u00a0", "\u202f", "\u2009")  # French typography: no-break and thin spaces


def read_lines(path, limit):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines[:limit] if limit else lines


def record_path(out, set_name, model, engine):
    return os.path.join(out, f"{set_name}.{model}.{engine}.jsonl")


def load_records(path):
    records = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    records[row["line"]] = row
    return records


def one_line(text):
    """A hypothesis on one line: inner line breaks become spaces (counted as `multiline`)."""
    return " ".join(text.split("\n")).strip()


def precis_chunk(args, engine, lines, first, workdir):
    """Translates one chunk of lines with precis; returns one record per line, with the first
    request precis made for it (None for a line precis copied unchanged)."""
    src = os.path.join(workdir, "chunk.fr.txt")
    with open(src, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    out_json = os.path.join(workdir, "out.json")
    req_json = os.path.join(workdir, "requests.json")
    cmd = [args.precis, "translate", src, "--format", "json", "--quiet", "-o", out_json]
    if engine == "precis":
        cmd += ["--translator", "llm", "--model", args.model, "--save-requests", req_json]
    else:
        cmd += ["--translator", "marian", "--translation-model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += args.precis_arg or []
    started = time.time()
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"precis failed on lines {first}-{first + len(lines) - 1}: {' '.join(cmd)}")
    seconds = time.time() - started
    with open(out_json, encoding="utf-8") as f:
        details = json.load(f)["translation"]["details"]
    # Alignment: one paragraph per input line, in order, each with its own source line.
    if len(details) != len(lines):
        sys.exit(f"precis returned {len(details)} paragraphs for {len(lines)} lines")
    for i, (line, detail) in enumerate(zip(lines, details)):
        if detail["source"] != line.strip():
            sys.exit(f"line {first + i}: precis paragraph source differs from the input line")
    saved = []
    if engine == "precis":
        with open(req_json, encoding="utf-8") as f:
            saved = json.load(f)
    records, at = [], 0
    for i, detail in enumerate(details):
        outputs = detail["requests"]
        requests = saved[at : at + len(outputs)] if engine == "precis" else []
        at += len(requests)
        records.append({
            "line": first + i,
            "hyp": one_line(detail["text"]),
            "raw": detail["text"],
            "translated": detail["translated"],
            "requests": len(outputs),
            "stop": outputs[0]["stop"] if outputs else None,
            "retry_stops": [o["stop"] for o in outputs[1:]],
            "generated_tokens": sum(o["generated_tokens"] for o in outputs),
            "request": ({"messages": requests[0]["messages"], "max_tokens": requests[0]["max_tokens"]}
                        if requests else None),
        })
    if at != len(saved):
        sys.exit(f"precis saved {len(saved)} requests, its paragraphs account for {at}")
    return records, seconds


def llama_chunk(args, lines, first, precis_records, workdir):
    """Replays the first request precis made for each line through llama.cpp."""
    requests = [dict(r["request"], name=f"line-{r['line']}") for r in precis_records if r["request"]]
    results, seconds = {}, 0.0
    if requests:
        req_json = os.path.join(workdir, "llama-requests.json")
        with open(req_json, "w", encoding="utf-8") as f:
            json.dump(requests, f, ensure_ascii=False)
        cmd = [args.llama_python, os.path.join(ROOT, "scripts", "llama_run.py"), "--model", args.gguf,
               "--requests", req_json, "--threads", str(args.llama_threads or args.threads or 2)]
        started = time.time()
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        seconds = time.time() - started
        for r in json.loads(done.stdout)["requests"]:
            if "error" in r:
                sys.exit(f"llama.cpp: {r['name']}: {r['error']}")
            results[r["name"]] = r
    records = []
    for i, line in enumerate(lines):
        r = results.get(f"line-{first + i}")
        if r is None:  # precis copied the line unchanged (no words to translate): same here
            records.append({"line": first + i, "hyp": line.strip(), "raw": line.strip(),
                            "translated": False, "requests": 0, "stop": None, "generated_tokens": 0})
            continue
        raw = r["text"].strip()
        records.append({"line": first + i, "hyp": one_line(raw), "raw": raw, "translated": True,
                        "requests": 1, "stop": "end" if r["stop_reason"] == "eog" else r["stop_reason"],
                        "generated_tokens": r["generated_tokens"], "threads": args.llama_threads or args.threads or 2})
    return records, seconds


def append(path, records):
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(args):
    fr_file, _ = SETS[args.set]
    lines = read_lines(os.path.join(args.data, fr_file), args.limit)
    engines = args.engines.split(",")
    for engine in engines:
        if engine not in ENGINES:
            sys.exit(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    engines.sort(key=ENGINES.index)  # precis first: llama.cpp replays its requests
    os.makedirs(args.out, exist_ok=True)
    paths = {e: record_path(args.out, args.set, args.model, e) for e in ENGINES}
    done = {e: load_records(paths[e]) for e in ENGINES}
    if "llama.cpp" in engines and not args.gguf:
        found = subprocess.run([args.precis, "models", "path", args.model], check=True,
                               stdout=subprocess.PIPE, text=True).stdout.split()
        args.gguf = next(p for p in found if p.endswith(".gguf"))
    print(f"{args.set} / {args.model}: {len(lines)} lines ({', '.join(engines)}) -> {args.out}",
          file=sys.stderr)
    for start in range(0, len(lines), args.chunk):
        chunk = lines[start : start + args.chunk]
        span = range(start, start + len(chunk))
        for engine in engines:
            todo = [i for i in span if i not in done[engine]]
            if not todo:
                continue
            with tempfile.TemporaryDirectory(prefix="precis-eval-") as workdir:
                if engine == "llama.cpp":
                    if any(i not in done["precis"] for i in span):
                        sys.exit(f"lines {start}-{span[-1]}: llama.cpp replays precis' requests; run precis first")
                    records, seconds = llama_chunk(args, chunk, start, [done["precis"][i] for i in span], workdir)
                else:
                    if len(todo) != len(chunk):
                        sys.exit(f"{paths[engine]} holds part of lines {start}-{span[-1]}: "
                                 "rerun with the --chunk it was made with")
                    records, seconds = precis_chunk(args, engine, chunk, start, workdir)
            records = [r for r in records if r["line"] in todo]
            append(paths[engine], records)
            done[engine].update({r["line"]: r for r in records})
            print(f"  lines {start}-{span[-1]}: {engine} {seconds:.0f} s", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Scoring and inspection

COMMENTARY = re.compile(
    r"^(here is|here's|sure|certainly|of course|the (english )?translation|translation\s*:|"
    r"english( translation)?\s*:|i'm sorry|i cannot|as an ai)|french text|\btranslated text\b|"
    r"\(note:|\bnote:", re.IGNORECASE)
FRENCH_WORDS = set("le la les des du une est et dans pour que qui sur avec pas ce cette sont "
                   "aux au nous vous ils elle mais ou leur été être par".split())


def flags(source, record):
    """Why an output looks wrong, as short labels (a heuristic for reading, not a score)."""
    hyp, found = record["hyp"], []
    words = re.findall(r"[^\W\d_]+", hyp.lower())
    if not hyp:
        found.append("empty")
    if "\n" in record.get("raw", ""):
        found.append("multiline")
    if COMMENTARY.search(hyp):
        found.append("commentary")
    if record.get("translated") is False:
        found.append("copied")
    elif hyp and (hyp == source.strip() or
                  (len(words) >= 4 and sum(w in FRENCH_WORDS for w in words) / len(words) > 0.2)):
        found.append("untranslated")
    if record.get("stop") not in (None, "end"):
        found.append(f"stop:{record['stop']}")
    if record.get("requests", 0) > 1:
        found.append("retried")
    ratio = len(hyp) / max(1, len(source.strip()))
    if hyp and ratio < 0.5:
        found.append("short")
    if ratio > 2.0 and len(source.strip()) > 20:
        found.append("long")
    return found


def sacrebleu(args, ref, hyp):
    cmd = [args.sacrebleu, ref, "-i", hyp, "-m", "bleu", "chrf", "-w", "2", "-f", "json"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    scores = json.loads(out)
    return {s["name"]: s for s in (scores if isinstance(scores, list) else [scores])}


def score(args):
    version = subprocess.run([args.sacrebleu, "--version"], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.strip()
    groups = {}
    for name in sorted(os.listdir(args.out)):
        m = re.fullmatch(r"(.+?)\.(.+)\.(precis|precis-marian|llama\.cpp)\.jsonl", name)
        if m:
            groups.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = load_records(
                os.path.join(args.out, name))
    rows, inspections, refs_used = [], [], set()
    for (set_name, model), engines in sorted(groups.items()):
        fr_file, en_file = SETS[set_name]
        sources = read_lines(os.path.join(args.data, fr_file), None)
        refs = read_lines(os.path.join(args.data, en_file), None)
        # the lines every engine has finished, from the first on
        n = 0
        while all(n in recs for recs in engines.values()) and n < len(sources):
            n += 1
        if n == 0:
            continue
        ref_path = os.path.join(args.out, f"{set_name}.ref.{n}.txt")
        refs_used.add(os.path.basename(ref_path))
        with open(ref_path, "w", encoding="utf-8") as f:
            f.write("\n".join(refs[:n]) + "\n")
        for engine in sorted(engines, key=ENGINES.index):
            recs = engines[engine]
            hyp_path = os.path.join(args.out, f"{set_name}.{model}.{engine}.hyp.txt")
            with open(hyp_path, "w", encoding="utf-8") as f:
                f.write("".join(recs[i]["hyp"] + "\n" for i in range(n)))
            s = sacrebleu(args, ref_path, hyp_path)
            counts, examples = {}, []
            for i in range(n):
                found = flags(sources[i], recs[i])
                for label in found:
                    counts[label] = counts.get(label, 0) + 1
                if found and len(examples) < args.examples:
                    examples.append({"line": i, "flags": found, "source": sources[i], "hyp": recs[i]["hyp"]})
            nbsp_lines = [i for i in range(n) if any(c in sources[i].strip() for c in NO_BREAK_SPACES)]
            nbsp_kept = [i for i in nbsp_lines
                         if recs[i].get("request")
                         and recs[i]["request"]["messages"][-1]["content"].endswith(sources[i].strip())]
            rows.append({
                "set": set_name, "model": model, "engine": engine, "sentences": n,
                "bleu": round(s["BLEU"]["score"], 2), "chrf": round(s["chrF2"]["score"], 2),
                "bleu_signature": s["BLEU"]["signature"], "chrf_signature": s["chrF2"]["signature"],
                "flags": counts,
                "no_break_space_lines": len(nbsp_lines),
                "no_break_space_in_prompt": len(nbsp_kept) if engine == "precis" else None,
                "hypotheses": os.path.relpath(hyp_path, args.out),
                # greedy decoding of the same GGUF and prompt: lines where the two engines agree
                "same_as_precis": (sum(recs[i]["hyp"] == engines["precis"][i]["hyp"] for i in range(n))
                                   if engine != "precis" and "precis" in engines else None),
            })
            inspections.append({"set": set_name, "model": model, "engine": engine, "examples": examples})
    for stale in os.listdir(args.out):  # reference slices of earlier scorings
        if re.fullmatch(r".+\.ref\.\d+\.txt", stale) and stale not in refs_used:
            os.remove(os.path.join(args.out, stale))
    result = {"sacrebleu": version, "rows": rows, "inspections": inspections}
    with open(os.path.join(args.out, "scores.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    table = ["| set | model | engine | BLEU | chrF | sentences |", "|---|---|---|---|---|---|"]
    table += [f"| {r['set']} | {r['model']} | {r['engine']} | {r['bleu']:.2f} | {r['chrf']:.2f} | "
              f"{r['sentences']} |" for r in rows]
    lines = [f"Scored with {version}; signatures in scores.json.", ""] + table + ["", "Suspicious outputs "
             "(heuristic flags, see scripts/translation_eval.py `flags`):", ""]
    lines += [f"- {r['set']} / {r['model']} / {r['engine']}: "
              + (", ".join(f"{k} {v}" for k, v in sorted(r["flags"].items())) or "none")
              + (f"; same output as precis on {r['same_as_precis']} of {r['sentences']} lines"
                 if r["same_as_precis"] is not None else "") for r in rows]
    with open(os.path.join(args.out, "scores.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=SHARED_EVAL, help="the shared eval folder (default ../shared/eval)")
    ap.add_argument("--out", default=os.path.join(ROOT, "eval", "translation"), help="output folder")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="translate (resumable)")
    r.add_argument("--set", choices=sorted(SETS), required=True)
    r.add_argument("--limit", type=int, default=None, help="the first N lines only")
    r.add_argument("--model", default="qwen2.5-coder-1.5b-instruct",
                   help="LLM id (precis, llama.cpp) or Marian id (precis-marian)")
    r.add_argument("--engines", default="precis,llama.cpp", help=f"comma-separated: {', '.join(ENGINES)}")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--chunk", type=int, default=25, help="lines per precis call (default 25)")
    r.add_argument("--precis", default=shutil.which("precis") or os.path.join(ROOT, "target", "release", "precis"))
    r.add_argument("--precis-arg", action="append", help="extra precis argument (repeatable), e.g. --precis-arg=--offline")
    r.add_argument("--llama-python", default=os.path.join("/work", "venv-llama", "bin", "python"),
                   help="a Python with llama-cpp-python (scripts/requirements-llama.txt)")
    r.add_argument("--llama-threads", type=int, default=None,
                   help="threads for llama.cpp (default: --threads); its greedy output does not depend on them")
    r.add_argument("--gguf", help="the GGUF for llama.cpp (default: precis models path MODEL)")
    s = sub.add_parser("score", help="score what finished")
    s.add_argument("--sacrebleu", default=shutil.which("sacrebleu") or "/work/venv-eval/bin/sacrebleu")
    s.add_argument("--examples", type=int, default=20, help="flagged outputs listed per engine in scores.json")
    args = ap.parse_args()
    if args.command == "run":
        run(args)
    else:
        score(args)


if __name__ == "__main__":
    main()
