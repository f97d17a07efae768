#!/bin/bash
# Publish a finished run folder as results/NAME: copy its records, suite, timing pass
# (timing.json), plots and models, time it again in one interleaved pass when ROUNDS is given
# (its models must be there), regenerate its leaderboards (Markdown,
# CSV, charts), the README's front page, results/README.md's run facts and the DWE barycenter
# figure (mnist), and the site.
#
#   bash results/publish.sh SOURCE_RUN NAME DEVICE_TAG [ROUNDS]
#   bash results/publish.sh /work/runs/mnist mnist cpu-intel-xeon-2c 21
#
# DEVICE_TAG names the leaderboard files (leaderboard-DEVICE_TAG.md / .csv), after the
# machine the records were measured on. Run it on otherwise idle cores: a timing pass is a
# measurement. Nothing is committed; review `git status` and the site's screenshots
# (tests/test_site_browser.py, or chromium --headless --screenshot) first.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n 2,13p "$0" >&2
    exit 2
fi
source_run=$1 name=$2 tag=$3 rounds=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/results/$name
[ -f "$source_run/records.jsonl" ] || { echo "no records.jsonl in $source_run" >&2; exit 1; }
[ "$(cd "$source_run" && pwd)" != "$dest" ] || { echo "SOURCE_RUN is results/$name itself" >&2; exit 1; }
# Other benchmarks' outputs kept in the folder (top-level JSON files that no run writes, e.g.
# shapes/lot-translation-error.json) survive the republication.
kept=$(mktemp -d)
if [ -d "$dest" ]; then
    find "$dest" -maxdepth 1 -name '*.json' ! -name suite.json ! -name timing.json -exec cp {} "$kept/" \;
    git -C "$root" rm -rq --ignore-unmatch "results/$name"
    rm -rf "$dest"
fi
mkdir -p "$dest"
cp -r "$kept/." "$dest/"
rm -rf "$kept"
cp "$source_run/records.jsonl" "$source_run/suite.json" "$dest/"
[ -f "$source_run/timing.json" ] && cp "$source_run/timing.json" "$dest/"
[ -d "$source_run/plots" ] && cp -r "$source_run/plots" "$dest/plots"
[ -d "$source_run/models" ] && cp -r "$source_run/models" "$dest/models"  # git-ignored; the timing pass reads them
if [ -n "$rounds" ]; then
    wbench retime "$dest" --rounds "$rounds"
fi
wbench leaderboard "$dest" --out "$dest/leaderboard-$tag.md" --plots "$dest"
wbench leaderboard "$dest" --format csv --out "$dest/leaderboard-$tag.csv"
if [ "$name" = mnist ]; then
    # the barycenter figure of the paper-size DWE at its last milestone (seed 0), which the
    # generated blocks below quote
    dwe=$(cd "$root" && ls results/mnist/models/mnist-dwe-seed0-*steps.pt 2>/dev/null | sort -V | tail -1 || true)
    if [ -n "$dwe" ]; then
        (cd "$root" && wbench dwe barycenter --model "$dwe" --dataset mnist --label 3 --limit 10 \
            --reference free_support --out results/mnist/dwe-barycenter-digit3.png > results/mnist/dwe-barycenter-digit3.json)
    fi
fi
python "$root/results/front_page.py"  # README.md's front page, results/README.md's run facts and folder table
wbench site "$root/results" --out "$root/results/site"
git -C "$root" add "results/$name" results/site README.md results/README.md
echo "published results/$name (staged, not committed): check the leaderboards, the site and results/README.md"
