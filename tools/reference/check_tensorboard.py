#!/usr/bin/env python3
"""Load the TensorBoard event files of a difftx run with TensorBoard itself and compare them with
its metrics.jsonl: every number of every record (but "step") must be a scalar of the same tag at
the same step, equal as float32.

Needs the `tensorboard` Python package (not in Debian; the GPU machine's PyTorch installation may
have it). Without it, prints "SKIPPED" and exits 0 (a skip, never a pass).
Usage: check_tensorboard.py OUTPUT_DIR
Exit code: 0 all equal (or skipped), 1 a mismatch.
"""
import json
import struct
import sys
from pathlib import Path


def main():
    run = Path(sys.argv[1])
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as e:
        print(f"SKIPPED: no tensorboard package ({e})")
        return 0
    acc = EventAccumulator(str(run / "runs"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    got = {(t, e.step): e.value for t in tags for e in acc.Scalars(t)}
    f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
    checked = bad = 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for k, v in rec.items():
            if k == "step" or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            checked += 1
            g = got.get((k, rec["step"]))
            if g is None or f32(g) != f32(v):
                bad += 1
                print(f"mismatch: {k} at step {rec['step']}: metrics.jsonl {v}, TensorBoard {g}")
    print(f"TensorBoard read {len(tags)} tags; {checked} values of metrics.jsonl compared, {bad} differ")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
