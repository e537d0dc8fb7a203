//! Random model, hardware, instance and plan files for the fuzz tests (`tests/fuzz.rs`): a valid
//! set drawn from one seed, every number from its whole valid range (`watos::input::ranges`).
#![allow(dead_code)]

use std::path::Path;

use watos::input::ranges::{self, Range};

/// splitmix64: the generator is a plain function of one seed that proptest draws.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    /// A number anywhere in a range: log-uniform over positive ranges, sometimes an end.
    pub fn in_range(&mut self, r: &Range) -> f64 {
        match self.int(0, 9) {
            0 => r.lo,
            1 => r.hi,
            _ if r.lo > 0.0 => (r.lo.ln() + self.unit() * (r.hi / r.lo).ln()).exp(),
            _ => r.hi * self.unit().powi(4),
        }
        .clamp(r.lo, r.hi)
    }
}

/// What a key holds, for breaking it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A number with a range.
    Number(Range),
    /// A whole number of at least 1 (plan degrees, whose upper bounds depend on the instance).
    Count,
    /// A whole number with a range.
    Sized(Range),
    /// One of some words.
    Word,
    Flag,
    /// A file name.
    Path,
}

/// One `key = value` line of a generated file.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The table it sits in (`""` for the top level, `stage` for the first `[[stage]]`).
    pub table: &'static str,
    pub key: &'static str,
    pub value: String,
    pub kind: Kind,
    pub required: bool,
}

pub fn entry(table: &'static str, key: &'static str, value: String, kind: Kind) -> Entry {
    Entry {
        table,
        key,
        value,
        kind,
        required: false,
    }
}

pub fn required(mut e: Entry) -> Entry {
    e.required = true;
    e
}

pub fn number(table: &'static str, key: &'static str, r: Range, rng: &mut Rng) -> Entry {
    entry(
        table,
        key,
        format!("{:?}", rng.in_range(&r)),
        Kind::Number(r),
    )
}

pub fn word(table: &'static str, key: &'static str, words: &[&str], rng: &mut Rng) -> Entry {
    entry(table, key, format!("\"{}\"", rng.pick(words)), Kind::Word)
}

pub fn flag(table: &'static str, key: &'static str, rng: &mut Rng) -> Entry {
    entry(table, key, rng.coin().to_string(), Kind::Flag)
}

/// A file as entries, written table by table in first-seen order.
#[derive(Clone, Debug)]
pub struct File {
    pub name: &'static str,
    pub entries: Vec<Entry>,
}

impl File {
    pub fn text(&self) -> String {
        let mut tables: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !tables.contains(&e.table) {
                tables.push(e.table);
            }
        }
        // The top level first: keys after a header belong to its table.
        tables.sort_by_key(|t| !t.is_empty());
        let mut out = String::new();
        for t in tables {
            match t {
                "" => {}
                "stage" => out.push_str("\n[[stage]]\n"),
                t => out.push_str(&format!("\n[{t}]\n")),
            }
            for e in self.entries.iter().filter(|e| e.table == t) {
                out.push_str(&format!("{} = {}\n", e.key, e.value));
            }
        }
        out
    }
}

pub struct Case {
    pub model: File,
    pub hardware: File,
    pub instance: File,
    pub plan: File,
    /// `[[stage]]` tables after the first.
    pub more_stages: String,
}

pub fn model(rng: &mut Rng, seq_len: u32) -> (File, u32, u32, u32) {
    let heads = *rng.pick(&[1u32, 2, 4, 8]);
    let hidden = heads * rng.pick(&[4u32, 8, 16, 64]);
    let kv = *rng.pick(&[1u32, 2, 4, 8].map(|d| d.min(heads)));
    let layers = rng.int(1, 6);
    let learned = rng.coin();
    let mut e = vec![
        required(entry("", "name", "\"fuzz\"".into(), Kind::Word)),
        required(entry(
            "",
            "layers",
            layers.to_string(),
            Kind::Sized(ranges::LAYERS),
        )),
        required(entry(
            "",
            "hidden",
            hidden.to_string(),
            Kind::Sized(ranges::HIDDEN),
        )),
        required(entry(
            "",
            "heads",
            heads.to_string(),
            Kind::Sized(ranges::HEADS),
        )),
        entry("", "kv_heads", kv.to_string(), Kind::Sized(ranges::HEADS)),
        required(entry(
            "",
            "vocab",
            rng.int(8, 4096).to_string(),
            Kind::Sized(ranges::VOCAB),
        )),
        required(flag("", "tied_embeddings", rng)),
        word("", "ffn", &["gelu", "swiglu"], rng),
        word(
            "",
            "position",
            if learned { &["learned"] } else { &["rope"] },
            rng,
        ),
        word("", "norm", &["layernorm", "rmsnorm"], rng),
        flag("", "bias", rng),
        flag("", "dropout", rng),
    ];
    if rng.coin() {
        let f = rng.int(1, 8 * hidden);
        e.push(entry(
            "",
            "ffn_hidden",
            f.to_string(),
            Kind::Sized(ranges::FFN_HIDDEN),
        ));
    }
    let positions = if learned {
        rng.int(seq_len, 2 * seq_len)
    } else {
        rng.int(1, 1 << 20)
    };
    e.push(entry(
        "",
        "max_positions",
        positions.to_string(),
        Kind::Sized(ranges::MAX_POSITIONS),
    ));
    (
        File {
            name: "model.toml",
            entries: e,
        },
        layers,
        heads,
        kv,
    )
}

pub fn hardware(rng: &mut Rng) -> (File, u32) {
    let mut e = vec![
        required(entry("", "name", "\"fuzz hw\"".into(), Kind::Word)),
        required(number("device", "peak_tflops", ranges::PEAK_TFLOPS, rng)),
        required(number("device", "sram_mb", ranges::SRAM_MB, rng)),
        required(number("device", "dram_gb", ranges::DRAM_GB, rng)),
        required(number(
            "device",
            "dram_bw_tb_per_s",
            ranges::BANDWIDTH_TB,
            rng,
        )),
        required(word("software", "attention", &["flash", "unfused"], rng)),
        required(word("software", "execution", &["dataflow", "kernels"], rng)),
    ];
    for key in ["gemm", "attention", "dram", "link"] {
        e.push(required(number("efficiency", key, ranges::EFFICIENCY, rng)));
    }
    e.push(required(number(
        "efficiency",
        "gemm_half_dim",
        ranges::GEMM_HALF_DIM,
        rng,
    )));
    let devices = if rng.coin() {
        let (rows, cols) = (rng.int(1, 4), rng.int(1, 4));
        e.extend([
            required(entry(
                "wafer",
                "rows",
                rows.to_string(),
                Kind::Sized(ranges::MESH_SIDE),
            )),
            required(entry(
                "wafer",
                "cols",
                cols.to_string(),
                Kind::Sized(ranges::MESH_SIDE),
            )),
            required(number(
                "wafer",
                "d2d_bw_tb_per_s",
                ranges::BANDWIDTH_TB,
                rng,
            )),
            required(number("wafer", "d2d_latency_ns", ranges::LATENCY_NS, rng)),
            entry(
                "wafer",
                "usable_area_mm2",
                "1000000.0".into(),
                Kind::Number(ranges::USABLE_AREA),
            ),
            number("wafer", "w2w_latency_ns", ranges::LATENCY_NS, rng),
        ]);
        // Area constants small enough that any die fits: the area check has tests of its own.
        for key in [
            "compute_mm2_per_tflops",
            "dram_stack_gb",
            "dram_stack_tb_per_s",
            "dram_stack_mm2",
            "dram_phy_mm2_per_tb_per_s",
            "d2d_mm2_per_tb_per_s",
        ] {
            let v = if key.starts_with("dram_stack_") && !key.ends_with("mm2") {
                "1000000.0"
            } else {
                "0.000001"
            };
            e.push(required(entry(
                "area",
                key,
                v.into(),
                Kind::Number(ranges::AREA_CONSTANT),
            )));
        }
        // The optional ones likewise: a die's edge and a reticle that hold anything.
        for (key, v) in [
            ("sram_mm2_per_mb", "0.000001"),
            ("dram_shoreline_mm_per_stack", "0.000001"),
            ("d2d_tb_per_s_per_mm", "1000000.0"),
            ("reticle_mm2", "1000000.0"),
        ] {
            e.push(entry(
                "area",
                key,
                v.into(),
                Kind::Number(ranges::AREA_CONSTANT),
            ));
        }
        rows * cols
    } else {
        let (gpus, nodes) = (rng.int(1, 4), rng.int(1, 3));
        e.extend([
            required(entry(
                "cluster",
                "gpus_per_node",
                gpus.to_string(),
                Kind::Sized(ranges::GPUS_PER_NODE),
            )),
            required(entry(
                "cluster",
                "nodes",
                nodes.to_string(),
                Kind::Sized(ranges::NODES),
            )),
            required(number(
                "cluster",
                "intra_bw_gb_per_s",
                ranges::BANDWIDTH_GB,
                rng,
            )),
            required(number(
                "cluster",
                "inter_bw_gb_per_s",
                ranges::BANDWIDTH_GB,
                rng,
            )),
            required(number(
                "cluster",
                "intra_latency_us",
                ranges::LATENCY_US,
                rng,
            )),
            required(number(
                "cluster",
                "inter_latency_us",
                ranges::LATENCY_US,
                rng,
            )),
        ]);
        gpus * nodes
    };
    (
        File {
            name: "hw.toml",
            entries: e,
        },
        devices,
    )
}

/// Divisors of `n`.
pub fn divisors(n: u32) -> Vec<u32> {
    (1..=n).filter(|d| n % d == 0).collect()
}

pub fn case(seed: u64) -> Case {
    let rng = &mut Rng(seed);
    let seq_len = rng.int(1, 512);
    let (model, layers, heads, kv) = model(rng, seq_len);
    let (hardware, devices) = hardware(rng);
    let tps: Vec<u32> = divisors(heads)
        .into_iter()
        .filter(|t| (kv % t == 0 || t % kv == 0) && *t <= devices)
        .collect();
    let tp = *rng.pick(&tps);
    let pp = rng.int(1, layers.min(devices / tp));
    let dp = rng.int(1, devices / (tp * pp));
    let mb = rng.int(1, 3);
    let batch = dp * mb * rng.int(1, 4);
    let mut instance = File {
        name: "inst.toml",
        entries: vec![
            required(entry("", "model", "\"model.toml\"".into(), Kind::Path)),
            required(entry("", "hardware", "\"hw.toml\"".into(), Kind::Path)),
            required(entry(
                "training",
                "global_batch",
                batch.to_string(),
                Kind::Sized(ranges::GLOBAL_BATCH),
            )),
            required(entry(
                "training",
                "seq_len",
                seq_len.to_string(),
                Kind::Sized(ranges::SEQ_LEN),
            )),
            word("training", "precision", &["bf16", "fp16"], rng),
            word("training", "grad_dtype", &["fp32", "bf16", "fp16"], rng),
            word("training", "optimizer", &["adam", "sgd"], rng),
        ],
    };
    if rng.coin() {
        instance.entries.extend([
            entry(
                "limits",
                "max_tp",
                rng.int(1, 8).to_string(),
                Kind::Sized(ranges::SEARCH_LIMIT),
            ),
            number("limits", "time_limit_s", ranges::TIME_LIMIT, rng),
        ]);
    }
    let split = watos::plan::even_split(layers, pp);
    let modes = ["\"none\"", "\"selective\"", "\"full\""];
    let mut plan = File {
        name: "plan.toml",
        entries: vec![
            required(entry("", "dp", dp.to_string(), Kind::Count)),
            required(entry("", "tp", tp.to_string(), Kind::Count)),
            required(entry("", "pp", pp.to_string(), Kind::Count)),
            required(entry("", "micro_batch", mb.to_string(), Kind::Count)),
            entry("", "interleave", "1".into(), Kind::Count),
            flag("", "sequence_parallel", rng),
            flag("", "zero1", rng),
            flag("", "dp_overlap", rng),
            required(entry("stage", "layers", split[0].to_string(), Kind::Count)),
            required(entry(
                "stage",
                "recompute",
                rng.pick(&modes).to_string(),
                Kind::Word,
            )),
            word("stage", "weights", &["dram", "sram"], rng),
        ],
    };
    plan.entries
        .retain(|e| !(e.key == "weights" && e.value == "\"sram\"" && rng.coin()));
    let more_stages = split[1..]
        .iter()
        .map(|n| {
            format!(
                "\n[[stage]]\nlayers = {n}\nrecompute = {}\n",
                rng.pick(&modes)
            )
        })
        .collect();
    Case {
        model,
        hardware,
        instance,
        plan,
        more_stages,
    }
}

/// Writes the case's four files into `dir`.
pub fn write(c: &Case, dir: &Path) {
    for f in [&c.model, &c.hardware, &c.instance] {
        std::fs::write(dir.join(f.name), f.text()).expect("write");
    }
    // Stages past the first follow the first, whole.
    let plan = c.plan.text() + &c.more_stages;
    std::fs::write(dir.join(c.plan.name), plan).expect("write");
}

/// 1-based line of `key = ` in `table` (the first `[[stage]]` for `stage`).
pub fn line_of_key(text: &str, table: &str, key: &str) -> Option<usize> {
    let header = match table {
        "" => None,
        "stage" => Some("[[stage]]".to_string()),
        t => Some(format!("[{t}]")),
    };
    let start = match &header {
        None => 0,
        Some(h) => text.lines().position(|l| l == h)?,
    };
    let needle = format!("{key} = ");
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.starts_with(&needle))
        .map(|(n, _)| n + 1)
}
