#!/bin/sh
# leakage.sh: llm-eval --leakage on the shared data sets finds the real
# duplicates they hold, checked by hand: in ag_news, test line 957 is train
# line 3600 but for case and a dash ("Halliburton suffers loss on asbestos
# claims HOUSTON -- ..." / "Halliburton Suffers Loss on Asbestos Claims
# HOUSTON - ..."), test 904 is the AP version of train 3212's story with
# another label (Business / Sci/Tech), test 44 and train 155 are one
# Reuters story under two headlines; in thucnews_titles, test 9726 is train
# 2416 labelled stocks there and realty here, test 5463 is train 1112 less
# "(图)"; in multi30k_en_fr (--task pairs: inputs compared), validation
# line 687 is training line 4750, input and output, and validation line
# 154 is training line 26699 less "Shirtless" (another output), test line
# 856 training line 28944 with "woman" for "man". The whole reports are
# pinned (deterministic: fixed hash seeds), and the JSON form is checked to
# parse and agree.
set -u
ag=$DATA/ag_news th=$DATA/thucnews_titles
[ -f "$ag/train.tsv" ] && [ -f "$th/train.tsv" ] || { echo "no shared data"; exit 77; }
fail=0
cp "$ag/train.tsv" ag-train.tsv; cp "$ag/test.tsv" ag-test.tsv
cp "$th/train.tsv" th-train.tsv; cp "$th/test.tsv" th-test.tsv
llm-eval --leakage ag-train.tsv ag-test.tsv > ag.out || { echo "FAIL: llm-eval on ag_news"; exit 1; }
llm-eval --leakage th-train.tsv th-test.tsv > th.out || { echo "FAIL: llm-eval on thucnews"; exit 1; }
cat ag.out th.out
want() { # file line
    grep -qxF "$2" "$1" || { echo "FAIL: $1 lacks: $2"; fail=1; }
}
tab=$(printf '\t')
want ag.out "ag-test.tsv:957${tab}ag-train.tsv:3600${tab}exact${tab}1.0000${tab}same-label"
want ag.out "ag-test.tsv:904${tab}ag-train.tsv:3212${tab}near${tab}0.8195${tab}other-label"
want ag.out "ag-test.tsv:44${tab}ag-train.tsv:155${tab}near${tab}0.8980${tab}same-label"
want ag.out "# ag-test.tsv: 11 of 1558 documents (0.71%) also in ag-train.tsv: 1 exact, 10 near; 1 with another label"
want th.out "th-test.tsv:9726${tab}th-train.tsv:2416${tab}exact${tab}1.0000${tab}other-label"
want th.out "th-test.tsv:5463${tab}th-train.tsv:1112${tab}near${tab}0.8750${tab}same-label"
want th.out "# th-test.tsv: 12 of 10000 documents (0.12%) also in th-train.tsv: 8 exact, 4 near; 1 with another label"
# Translation pairs: the inputs.
mt=$DATA/multi30k_en_fr
if [ -f "$mt/train.tsv" ]; then
    cp "$mt/train.tsv" mt-train.tsv; cp "$mt/val.tsv" mt-val.tsv; cp "$mt/test.tsv" mt-test.tsv
    llm-eval --leakage mt-train.tsv --task pairs mt-val.tsv mt-test.tsv > mt.out ||
        { echo "FAIL: llm-eval --task pairs on multi30k_en_fr"; exit 1; }
    cat mt.out
    want mt.out "mt-val.tsv:687${tab}mt-train.tsv:4750${tab}exact${tab}1.0000${tab}same-output"
    want mt.out "mt-val.tsv:154${tab}mt-train.tsv:26699${tab}near${tab}0.8305${tab}other-output"
    want mt.out "mt-test.tsv:856${tab}mt-train.tsv:28944${tab}near${tab}0.8824${tab}other-output"
    want mt.out "# mt-val.tsv: 3 of 1014 documents (0.30%) also in mt-train.tsv: 1 exact, 2 near; 2 with another output"
    want mt.out "# mt-test.tsv: 1 of 1000 documents (0.10%) also in mt-train.tsv: 0 exact, 1 near; 1 with another output"
else
    echo "multi30k_en_fr not found: its pairs not checked"
fi
# The JSON report says the same.
llm-eval --leakage ag-train.tsv --format json ag-test.tsv > ag.json || { echo "FAIL: json"; exit 1; }
if command -v python3 > /dev/null 2>&1; then
    python3 - ag.json ag.out <<'PY' || fail=1
import sys, json
j = json.load(open(sys.argv[1]))
f = j["files"][0]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if not l.startswith("#")]
got = [("ag-test.tsv:%d" % m["line"], "ag-train.tsv:%d" % m["train_line"], m["kind"],
        "%.4f" % m["similarity"], m["label"] + "-label") for m in f["matches"]]
ok = got == [tuple(r) for r in rows] and f["leaked"] == 11 and f["exact"] == 1 \
    and f["documents"] == 1558 and j["train_documents"] == 6042
print("json agrees with the table" if ok else "FAIL: json differs from the table")
sys.exit(0 if ok else 1)
PY
fi
exit $fail
