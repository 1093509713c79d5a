#!/usr/bin/env bash
# Every kind of path a user may give precis (a device, a FIFO with a reader, files of several
# modes, links, a loop, a folder, bad counts, a bad catalog, cache or glossary), with the exit
# code and the last stderr line of each, as a Markdown table. Needs root (mknod) and
# qwen2.5-coder-0.5b-instruct in the cache; devices are made in a temporary folder, never /dev.
# tests/paths_cli.rs is the lasting check of the same cases.
#   scripts/paths_table.sh            # PRECIS=path/to/precis to try another binary
set -u
P=${PRECIS:-$(cd "$(dirname "$0")/.." && pwd)/target/release/precis}
T=$(mktemp -d)
cd "$T"
printf 'Bonjour à tous.\n' > in.txt
tr=(translate in.txt --translator llm --model qwen2.5-coder-0.5b-instruct -q)
mknod null c 1 3; mknod full c 1 7; mknod zero c 1 5
mkfifo fifo; mkdir dir; echo x > file.txt; ln -s made.txt link; ln -s loop loop
printf 'old\n' > keep644.txt; chmod 644 keep644.txt; printf 'old\n' > keep600.txt; chmod 600 keep600.txt
row() { # description, then the command
    local what="$1"; shift
    "$@" >/dev/null 2>err.txt; local rc=$?
    local err; err=$(grep -v '^\s*$' err.txt | tail -1)
    printf '| %s | `%s` | %s | %s |\n' "$what" "${*#$P }" "$rc" "${err:-(none)}"
}
echo '| target | command | exit | stderr (last line) |'
echo '|---|---|---|---|'
row "char device (mknod 1,3)" $P "${tr[@]}" -o null
echo "|  | after: \`stat -c %F null\` = $(stat -c %F null) | | |"
(cat fifo > fifo.out &) ; sleep 0.2
row "FIFO with a reader" $P "${tr[@]}" -o fifo
sleep 0.5; echo "|  | the reader got: \"$(cat fifo.out)\" | | |"
row "existing 0644 file" $P "${tr[@]}" -o keep644.txt
row "existing 0600 file" $P "${tr[@]}" -o keep600.txt
echo "|  | after: keep644.txt $(stat -c %a keep644.txt), keep600.txt $(stat -c %a keep600.txt); content: \"$(cat keep644.txt)\" | | |"
row "symbolic link (dangling)" $P "${tr[@]}" -o link
echo "|  | after: link is $(stat -c %F link), made.txt: \"$(cat made.txt)\" | | |"
row "/dev/full-like device (mknod 1,7)" $P "${tr[@]}" -o full
row "a folder" $P "${tr[@]}" -o dir
row "under a file" $P "${tr[@]}" -o file.txt/out.txt
row "missing folder" $P "${tr[@]}" -o nope/out.txt
row "loop of links" $P "${tr[@]}" -o loop
row "the input itself" $P "${tr[@]}" -o in.txt
row "input: a folder" $P translate dir --translator llm -q
row "input: a device (/dev/zero)" $P translate zero --translator llm -q
row "--max-tokens 0" $P "${tr[@]}" --max-tokens 0
row "--threads 0" $P "${tr[@]}" --threads 0
row "--beams 0" $P "${tr[@]}" --beams 0
row "--sentences 0" $P run in.txt --sentences 0
row "--catalog a file" $P --catalog file.txt models list
row "HF_HOME a file" env HF_HOME=file.txt $P "${tr[@]}"
row "models import a device" $P models import qwen2.5-coder-0.5b-instruct zero
printf 'a\tb\tc\n' > bad.tsv
row "--glossary with 3 columns" $P "${tr[@]}" --glossary bad.tsv
rm -rf "$T"
