//! A subject state's stored form read and written natively, batch by batch, as the subject agent
//! reads and writes it (bench/state_roundtrip.py runs it beside the same work in Python):
//! zstd frame (with the state dictionary, level 3, checksum) -> JSON text -> objects -> JSON text
//! -> zstd frame, then the objects let go.
//!
//! Two native forms of the objects: `serde_json::Value` (a generic tree, as Python's dicts are),
//! and typed structs borrowing their strings from the text where serde can (src/typed.rs).
//!
//! Usage: state-roundtrip STATES DICTIONARY ROUNDS BATCH. STATES holds each state's JSON text
//! after its length (u32, little-endian). One JSON line per form and round, in us per state.

mod typed;

use std::time::Instant;

#[derive(Default)]
struct Phases {
    decompress: f64,
    parse: f64,
    serialise: f64,
    compress: f64,
    free: f64,
    compressed: usize,
    bytes_in: usize,
    bytes_out: usize,
    identical: usize,
}

impl Phases {
    fn print(&self, form: &str, states: usize) {
        let us = |x: f64| x * 1e6 / states as f64;
        println!(
            "{{\"form\": \"{form}\", \"states\": {states}, \"decompress_us\": {:.2}, \"parse_us\": {:.2}, \
             \"serialise_us\": {:.2}, \"compress_us\": {:.2}, \"free_us\": {:.2}, \"compressed_mean_b\": {:.0}, \
             \"bytes_out_per_in\": {:.4}, \"identical_share\": {:.4}}}",
            us(self.decompress), us(self.parse), us(self.serialise), us(self.compress), us(self.free),
            self.compressed as f64 / states as f64, self.bytes_out as f64 / self.bytes_in.max(1) as f64,
            self.identical as f64 / states as f64
        );
    }
}

fn round<T, P, W>(frames: &[Vec<u8>], sizes: &[usize], batch: usize, comp: &mut zstd::bulk::Compressor,
                  decomp: &mut zstd::bulk::Decompressor, parse: P, write: W) -> Phases
where
    P: for<'a> Fn(&'a [u8]) -> T,
    W: Fn(&T) -> Vec<u8>,
{
    let mut ph = Phases::default();
    for first in (0..frames.len()).step_by(batch) {
        let last = (first + batch).min(frames.len());
        let t0 = Instant::now();
        let texts: Vec<Vec<u8>> = (first..last).map(|k| decomp.decompress(&frames[k], sizes[k]).unwrap()).collect();
        let t1 = Instant::now();
        let objects: Vec<T> = texts.iter().map(|t| parse(t)).collect();
        let t2 = Instant::now();
        let written: Vec<Vec<u8>> = objects.iter().map(|o| write(o)).collect();
        let t3 = Instant::now();
        for w in &written {
            ph.compressed += comp.compress(w).unwrap().len();
        }
        let t4 = Instant::now();
        drop(objects);
        let t5 = Instant::now();
        ph.bytes_in += texts.iter().map(Vec::len).sum::<usize>();
        ph.bytes_out += written.iter().map(Vec::len).sum::<usize>();
        ph.identical += texts.iter().zip(&written).filter(|(a, b)| a == b).count();
        ph.decompress += (t1 - t0).as_secs_f64();
        ph.parse += (t2 - t1).as_secs_f64();
        ph.serialise += (t3 - t2).as_secs_f64();
        ph.compress += (t4 - t3).as_secs_f64();
        ph.free += (t5 - t4).as_secs_f64();
    }
    ph
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: state-roundtrip STATES DICTIONARY ROUNDS BATCH");
        std::process::exit(2);
    }
    let data = std::fs::read(&args[1]).expect("the states file");
    let dict = std::fs::read(&args[2]).expect("the state dictionary");
    let rounds: usize = args[3].parse().expect("ROUNDS: a number");
    let batch: usize = args[4].parse().expect("BATCH: a number");
    let mut texts: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let n = u32::from_le_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        texts.push(&data[i + 4..i + 4 + n]);
        i += 4 + n;
    }
    let mut comp = zstd::bulk::Compressor::with_dictionary(3, &dict).unwrap();
    comp.include_checksum(true).unwrap();
    let mut decomp = zstd::bulk::Decompressor::with_dictionary(&dict).unwrap();
    let frames: Vec<Vec<u8>> = texts.iter().map(|t| comp.compress(t).unwrap()).collect();
    let sizes: Vec<usize> = texts.iter().map(|t| t.len()).collect();
    for _ in 0..rounds {
        round(&frames, &sizes, batch, &mut comp, &mut decomp,
              |t| serde_json::from_slice::<serde_json::Value>(t).expect("a state's JSON"),
              |v| serde_json::to_vec(v).unwrap())
            .print("rust serde_json::Value", texts.len());
        // the typed form borrows from the text, so it is parsed and written inside one closure's
        // reach: parse keeps the text's bytes (a copy, as the agent's read keeps them) and the structs
        round(&frames, &sizes, batch, &mut comp, &mut decomp,
              |t| Typed::new(t.to_vec()),
              |o| o.write())
            .print("rust typed structs", texts.len());
    }
}

/// A state's text and its typed structs, which borrow from it.
struct Typed {
    state: typed::State<'static>, // declared first: dropped before the text it borrows from
    _text: Box<[u8]>,
}

impl Typed {
    fn new(text: Vec<u8>) -> Typed {
        let text = text.into_boxed_slice();
        // SAFETY: the structs borrow from `text`, a heap slice that is neither moved nor changed while
        // `state` lives, and `state` is dropped first (fields drop in their order of declaration).
        let view: &'static [u8] = unsafe { std::slice::from_raw_parts(text.as_ptr(), text.len()) };
        let state = serde_json::from_slice::<typed::State>(view).expect("a state of the typed shape");
        Typed { state, _text: text }
    }

    fn write(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).unwrap()
    }
}
