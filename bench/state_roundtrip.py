"""A subject state's stored form read and written, in Python and natively: what a native rules core
would pay for the state alone (``make bench-state``).

The subject agent reads each touched subject's state every batch and writes it back
(sinks/redis_state.py): the zstd frame decompressed with the state dictionary, the JSON text
parsed into objects, the new objects written as JSON text and compressed (level 3, checksum), the
objects let go. This times those five phases over the states the rules core makes of the
benchmark's inputs (bench/sink.py ``subject_states``), ``--batch`` states at a time as the agent
takes them, in three forms:

* ``python orjson``: what the worker does (orjson, python-zstandard), with the collector off as in
  the worker (creditstream/heap.py);
* ``rust serde_json::Value``: a generic tree, as Python's dicts are (bench/native_state);
* ``rust typed structs``: the state's sections as Rust structs, strings borrowed from the text where
  serde can (bench/native_state/src/typed.rs): the form a native rules core would hold a state in.

With ``--shapes``, the Python form also runs over the same states cut down (not a form the product
stores; a measure of what each section costs): ``records without content`` (each record's canonical
decision text and its other versions' left out) and ``... nor timeline`` (the list timeline as
well).

Every form checks that it writes back the very bytes it read (``identical_share``: 1 means every
state), so all three do the same work. The native program is built with cargo from crates.io into
``.build/native_state`` (``--native``; the product never builds nor loads it). Time per state in us
(one thread's clock, in both languages), medians over ``--rounds`` rounds, the forms alternated
within each round."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRATE = ROOT / "bench" / "native_state"
TARGET = ROOT / ".build" / "native_state"
PHASES = ("decompress", "parse", "serialise", "compress", "free")


def state_texts(inputs: int) -> list[bytes]:
    """The JSON text of every state the rules core makes of ``inputs`` benchmark inputs, as stored."""
    import orjson

    from bench.sink import subject_states
    from domain.record_maps import json_default

    return [orjson.dumps(s, default=json_default) for s in subject_states(inputs).values()]


def write_states(texts: list[bytes], path: Path) -> None:
    """Each text after its length (u32, little-endian): the native program's input."""
    with path.open("wb") as f:
        for t in texts:
            f.write(struct.pack("<I", len(t)))
            f.write(t)


def read_states(path: Path) -> list[bytes]:
    data, texts, i = path.read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        texts.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return texts


SHAPES = {"records without content": (False,), "records without content nor timeline": (True,)}


def cut_down(text: bytes, *, timeline_too: bool) -> bytes:
    """A state's JSON text without its records' decision texts (and without its timeline):
    bench/sink.py ``cut_down`` over the parsed text."""
    import orjson

    from bench import sink

    return orjson.dumps(sink.cut_down(orjson.loads(text), timeline_too=timeline_too))


def python_round(texts: list[bytes], batch: int = 500, form: str = "python orjson") -> dict:
    """One round of the five phases over every state, ``batch`` at a time, as the worker runs them."""
    import orjson
    import zstandard

    from creditstream.heap import worker_rounds
    from sinks import state_codec

    d = state_codec._dictionary(state_codec.CURRENT)
    comp = zstandard.ZstdCompressor(level=state_codec.LEVEL, dict_data=d, write_checksum=True,
                                    write_content_size=True, write_dict_id=True)
    dec = zstandard.ZstdDecompressor(dict_data=d)
    frames = [comp.compress(t) for t in texts]
    spent = dict.fromkeys(PHASES, 0.0)
    compressed = identical = 0
    clock = time.perf_counter  # one thread on both sides: its wall clock, as the native program times
    with worker_rounds():
        for first in range(0, len(frames), batch):
            t0 = clock()
            read = [dec.decompress(f) for f in frames[first:first + batch]]
            t1 = clock()
            objects = [orjson.loads(t) for t in read]
            t2 = clock()
            written = [orjson.dumps(o) for o in objects]
            t3 = clock()
            compressed += sum(len(comp.compress(w)) for w in written)
            t4 = clock()
            del objects
            t5 = clock()
            identical += sum(a == b for a, b in zip(read, written))
            for phase, (a, b) in zip(PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                spent[phase] += b - a
    n = len(texts)
    return {"form": form, "states": n, **{f"{p}_us": spent[p] * 1e6 / n for p in PHASES},
            "compressed_mean_b": compressed / n, "identical_share": identical / n}


def build_native() -> Path:
    """The native program, built with cargo (release) into .build/native_state."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise SystemExit("bench.state_roundtrip --native needs Rust's cargo on PATH (https://rustup.rs); "
                         "run without --native for the Python form alone")
    print("[bench-state] cargo build --release (bench/native_state) ...", file=sys.stderr)
    subprocess.run([cargo, "build", "--release", "--quiet", "--manifest-path", str(CRATE / "Cargo.toml"),
                    "--target-dir", str(TARGET)], check=True)
    return TARGET / "release" / "state-roundtrip"


def native_round(program: Path, states: Path, batch: int = 500) -> list[dict]:
    """One round of the native program: a JSON line per form."""
    from sinks import state_codec

    dictionary = Path(state_codec.__file__).with_name(state_codec.DICTIONARIES[state_codec.CURRENT].file)
    out = subprocess.run([str(program), str(states), str(dictionary), "1", str(batch)], check=True,
                         capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def round_trip_us(row: dict) -> float:
    return sum(row[f"{p}_us"] for p in PHASES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_roundtrip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=40_000, help="benchmark inputs to make states of")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every state (medians reported)")
    parser.add_argument("--batch", type=int, default=500, help="states a batch")
    parser.add_argument("--shapes", action="store_true",
                        help="also the Python form over the states cut down (records without content; nor timeline)")
    parser.add_argument("--native", action=argparse.BooleanOptionalAction, default=True,
                        help="also build and run the native forms (needs cargo)")
    args = parser.parse_args(argv)

    program = build_native() if args.native else None
    print(f"[bench-state] the rules core's states of {args.inputs:,} benchmark inputs ...", file=sys.stderr)
    texts = state_texts(args.inputs)
    TARGET.mkdir(parents=True, exist_ok=True)
    states = TARGET / "states.bin"
    write_states(texts, states)
    shaped = {f"python, {name}": [cut_down(t, timeline_too=too) for t in texts]
              for name, (too,) in SHAPES.items()} if args.shapes else {}
    rows: dict[str, list[dict]] = {}
    for n in range(1, args.rounds + 1):
        got = [python_round(texts, args.batch)] + (native_round(program, states, args.batch) if program else [])
        got += [python_round(cut, args.batch, form) for form, cut in shaped.items()]
        for row in got:
            rows.setdefault(row["form"], []).append(row)
        print(f"[bench-state] round {n}: " + ", ".join(f"{r['form']} {round_trip_us(r):.1f} us" for r in got),
              file=sys.stderr)
    mean_json = statistics.mean(map(len, texts))
    print(f"{len(texts):,} states, {mean_json:,.0f} B of JSON on average; us per state, medians of {args.rounds}:")
    print(f"{'form':<44}" + "".join(f"{p:>11}" for p in PHASES)
          + f"{'in all':>9}{'JSON B':>8}{'zstd B':>8}{'same bytes':>11}")
    json_b = {"python orjson": mean_json, **{f: statistics.mean(map(len, c)) for f, c in shaped.items()}}
    summary = {}
    for form, got in rows.items():
        med = {p: statistics.median(r[f"{p}_us"] for r in got) for p in PHASES}
        total = statistics.median(round_trip_us(r) for r in got)
        same = min(r["identical_share"] for r in got)
        size = statistics.median(r["compressed_mean_b"] for r in got)
        size_json = json_b.get(form, mean_json)
        print(f"{form:<44}" + "".join(f"{med[p]:>11.1f}" for p in PHASES)
              + f"{total:>9.1f}{size_json:>8,.0f}{size:>8.0f}{same:>11.2%}")
        summary[form] = {**{f"{p}_us": round(med[p], 2) for p in PHASES}, "round_trip_us": round(total, 2),
                         "json_mean_b": round(size_json), "compressed_mean_b": round(size),
                         "identical_share": same}
    print(json.dumps({"states": len(texts), "json_mean_b": round(mean_json), "batch": args.batch,
                      "rounds": args.rounds, "forms": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
