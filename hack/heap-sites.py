#!/usr/bin/env python3
"""Sums a dhat heap profile (hack/bench-operator.sh --memory with BENCH_HEAP=FILE) by call site.

    hack/heap-sites.py FILE [DEPTH] [TOP]

Prints the bytes live when the profile was written, grouped by the innermost DEPTH frames
(default 3) of project or kube code above the allocator, the TOP largest groups (default 30).
"""
import collections
import re
import sys

import json

path = sys.argv[1]
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 3
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
profile = json.load(open(path))
frames = profile["ftbl"]
# Frames worth naming: ours and the libraries whose data structures the caches are made of.
interesting = re.compile(r"dynamo_|kube_runtime|kube_client|hyper|tokio|serde_json|lz4_flex|tower")


def short(frame):
    # "0x1234: path::to::fn (src/file.rs:12:5)" -> "path::to::fn (file.rs:12)"
    frame = re.sub(r"^0x[0-9a-f]+: ", "", frame)
    frame = re.sub(r"<[^<>]*>", "<>", frame)
    frame = re.sub(r"\(.*/([^/]+\.rs):(\d+):\d+\)", r"(\1:\2)", frame)
    return frame


groups = collections.Counter()
blocks = collections.Counter()
total = 0
for pp in profile["pps"]:
    live = pp["eb"]
    if not live:
        continue
    total += live
    names = [short(frames[i]) for i in pp["fs"] if interesting.search(frames[i])]
    # A block with no frames at all (dhat records some so) is named as such.
    fallback = short(frames[pp["fs"][-1]]) if pp["fs"] else "(no frames)"
    key = " <- ".join(names[:depth]) or fallback
    groups[key] += live
    blocks[key] += pp["ebk"]

print(f"live at the end: {total / 1024 / 1024:.1f} MiB in {sum(blocks.values())} blocks")
for key, live in groups.most_common(top):
    print(f"{live / 1024:10.1f} KiB {blocks[key]:8d} blocks  {key}")
