//! Design spaces (`hardware/spaces/*.toml`): ranges of what a wafer is made of, and the budgets
//! that tie them (the area model's wafer area, reticle and die edge, and an optional power budget
//! per die). A design is one choice of every range; the space is their cross product, numbered so
//! that a slice of it (`--shard I/N`) can be handed to another machine.

use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{ensure, Error, FieldError};
use crate::hardware::power::PowerModel;
use crate::hardware::{AreaModel, Hardware, Wafer};
use crate::input::{ranges, relative_to, SourceFile};

/// Most points a space may hold: every one is checked against the budgets (about a microsecond
/// each), so ten million take seconds before any model is solved.
pub const MAX_POINTS: u64 = 10_000_000;

/// Most values one range may expand to.
const MAX_VALUES: usize = 10_000;

/// One range of a design space: a number, a list, or `{ min, max, step, also }`.
///
/// ```
/// let d: watos::explore::space::Dimension = toml::from_str::<toml::Table>("x = { min = 1, max = 2, step = 0.5, also = [0.7] }")
///     .unwrap()["x"].clone().try_into().unwrap();
/// assert_eq!(d.values(1.0).unwrap(), vec![0.7, 1.0, 1.5, 2.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Dimension {
    List(Vec<f64>),
    Range {
        min: f64,
        max: f64,
        step: Option<f64>,
        also: Vec<f64>,
    },
}

impl<'de> Deserialize<'de> for Dimension {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dimension;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, a list of numbers, or a table { min, max, step, also }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dimension, E> {
                Ok(Dimension::List(vec![v as f64]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dimension, E> {
                Ok(Dimension::List(vec![v as f64]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dimension, E> {
                Ok(Dimension::List(vec![v]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dimension, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<f64>()? {
                    out.push(v);
                }
                Ok(Dimension::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dimension, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct R {
                    min: f64,
                    max: f64,
                    step: Option<f64>,
                    #[serde(default)]
                    also: Vec<f64>,
                }
                let r = R::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Dimension::Range {
                    min: r.min,
                    max: r.max,
                    step: r.step,
                    also: r.also,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Dimension {
    /// Every value, sorted and without repeats; `default_step` when a range gives none (0: a
    /// range must give one). The error names the part of the range at fault.
    pub fn values(&self, default_step: f64) -> Result<Vec<f64>, FieldError> {
        let mut out = match self {
            Dimension::List(v) => {
                ensure(!v.is_empty(), || {
                    FieldError::new("", "is an empty list", "give at least one value")
                })?;
                v.clone()
            }
            Dimension::Range {
                min,
                max,
                step,
                also,
            } => {
                for (part, v) in [("min", min), ("max", max)] {
                    ensure(v.is_finite(), || {
                        FieldError::new(part, format!("is {v}"), "a finite number")
                    })?;
                }
                ensure(min <= max, || {
                    FieldError::new("max", format!("{max} is below min = {min}"), "max >= min")
                })?;
                let step = step.unwrap_or(default_step);
                let count = if max > min {
                    ensure(step.is_finite() && step > 0.0, || {
                        FieldError::new(
                            "step",
                            format!("is {step}"),
                            "a positive step, e.g. step = 100",
                        )
                    })?;
                    ((max - min) / step + 1e-9).floor() + 1.0
                } else {
                    1.0
                };
                ensure(count <= MAX_VALUES as f64, || {
                    FieldError::new(
                        "step",
                        format!("makes {count} values"),
                        format!("at most {MAX_VALUES} values per range: a larger step"),
                    )
                })?;
                let mut v: Vec<f64> = (0..count as usize).map(|i| min + i as f64 * step).collect();
                v.extend(also);
                v
            }
        };
        ensure(out.len() <= MAX_VALUES, || {
            FieldError::new(
                "",
                format!("has {} values", out.len()),
                format!("at most {MAX_VALUES}"),
            )
        })?;
        out.sort_by(f64::total_cmp);
        out.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1.0));
        Ok(out)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    name: String,
    #[serde(default)]
    source: Option<String>,
    base: String,
    #[serde(default)]
    usable_area_mm2: Option<f64>,
    mesh: MeshFile,
    die: DieFile,
    dram: DramFile,
    d2d: D2dFile,
    #[serde(default)]
    power: Option<PowerBudget>,
    #[serde(default)]
    technology: Vec<Technology>,
    #[serde(default)]
    reference: Vec<ReferenceFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshFile {
    rows: Dimension,
    cols: Dimension,
    #[serde(default)]
    dies: Option<Dimension>,
    #[serde(default)]
    max_aspect: Option<f64>,
    #[serde(default)]
    both_orientations: bool,
    #[serde(default)]
    wafers: Option<Dimension>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DieFile {
    peak_tflops: Dimension,
    #[serde(default)]
    sram_mb_per_tflops: Option<Dimension>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DramFile {
    stacks: Dimension,
    stack_gb: Dimension,
    stack_tb_per_s: Dimension,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct D2dFile {
    bw_tb_per_s: Dimension,
}

/// An optional power budget per die.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerBudget {
    pub max_w_per_die: f64,
}

/// A technology generation: its area and power constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technology {
    pub name: String,
    #[serde(default)]
    pub area: AreaModel,
    #[serde(default)]
    pub power: PowerModel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    name: String,
    hardware: String,
}

/// A named hardware file to compare designs against (the first is the baseline).
#[derive(Debug, Clone)]
pub struct Reference {
    pub name: String,
    pub hardware: Hardware,
}

/// A design space, read and checked, with every range expanded.
#[derive(Debug, Clone)]
pub struct DesignSpace {
    pub name: String,
    pub source: Option<String>,
    pub path: PathBuf,
    /// The text of the file, for a fingerprint that slices of one sweep must share.
    pub text: String,
    /// What every design shares (efficiency, software, D2D latency, wafer-to-wafer link).
    pub base: Hardware,
    pub usable_area_mm2: f64,
    pub technologies: Vec<Technology>,
    pub wafers: Vec<u32>,
    /// Mesh shapes per wafer, `(rows, cols)`, after the shape constraints.
    pub shapes: Vec<(u32, u32)>,
    pub peak_tflops: Vec<f64>,
    /// SRAM per TFLOP/s; `None`: each technology's included share.
    pub sram_mb_per_tflops: Vec<Option<f64>>,
    pub stacks: Vec<u32>,
    pub stack_gb: Vec<f64>,
    pub stack_tb_per_s: Vec<f64>,
    pub d2d_tb_per_s: Vec<f64>,
    pub power: Option<PowerBudget>,
    pub references: Vec<Reference>,
}

/// One point of a design space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Design {
    /// Its number in the space (the order of [`DesignSpace::design`]).
    pub index: u64,
    pub technology: usize,
    pub wafers: u32,
    pub rows: u32,
    pub cols: u32,
    pub peak_tflops: f64,
    pub sram_mb: f64,
    pub stacks: u32,
    pub stack_gb: f64,
    pub stack_tb_per_s: f64,
    pub d2d_tb_per_s: f64,
}

impl Design {
    /// DRAM per die.
    pub fn dram_gb(&self) -> f64 {
        self.stacks as f64 * self.stack_gb
    }
    /// DRAM bandwidth per die.
    pub fn dram_tb_per_s(&self) -> f64 {
        self.stacks as f64 * self.stack_tb_per_s
    }
    /// Dies per wafer.
    pub fn dies(&self) -> u32 {
        self.rows * self.cols
    }
}

fn whole(
    v: &[f64],
    field: &str,
    range: ranges::Range,
    example: &str,
) -> Result<Vec<u32>, FieldError> {
    v.iter()
        .map(|x| {
            range.check(field, *x, example)?;
            ensure(x.fract() == 0.0, || {
                FieldError::new(field, format!("{x} is not a whole number"), example)
            })?;
            Ok(*x as u32)
        })
        .collect()
}

fn expand(d: &Dimension, field: &str, default_step: f64) -> Result<Vec<f64>, FieldError> {
    d.values(default_step).map_err(|e| {
        let field = if e.field.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{}", e.field)
        };
        FieldError { field, ..e }
    })
}

fn checked(
    d: &Dimension,
    field: &str,
    range: ranges::Range,
    example: &str,
) -> Result<Vec<f64>, FieldError> {
    let v = expand(d, field, 0.0)?;
    for x in &v {
        range.check(field, *x, example)?;
    }
    Ok(v)
}

impl DesignSpace {
    /// Reads and checks a design space file; its `base` and references are read relative to it.
    ///
    /// ```
    /// let s = watos::explore::DesignSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/spaces/paper.toml")).unwrap();
    /// assert!(s.points() >= 5_000);
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let src = SourceFile::read(path)?;
        let file: SpaceFile = src.parse_toml()?;
        let base_path = relative_to(path, &file.base);
        let base = Hardware::load(&base_path).map_err(|e| {
            src.field_error(FieldError::new(
                "base",
                format!("{} is not a valid hardware file: {e}", base_path.display()),
                "`base` names a wafer hardware file (hardware/*.toml), relative to the space",
            ))
        })?;
        let mut references = Vec::new();
        for (i, r) in file.reference.iter().enumerate() {
            let p = relative_to(path, &r.hardware);
            let hardware = Hardware::load(&p).map_err(|e| {
                src.field_error(FieldError::new(
                    format!("reference[{i}].hardware"),
                    format!("{} is not a valid hardware file: {e}", p.display()),
                    "a hardware file (hardware/*.toml), relative to the space",
                ))
            })?;
            references.push(Reference {
                name: r.name.clone(),
                hardware,
            });
        }
        Self::build(file, &src, base, references)
    }

    fn build(
        file: SpaceFile,
        src: &SourceFile,
        base: Hardware,
        references: Vec<Reference>,
    ) -> Result<Self, Error> {
        let located = |e: FieldError| src.field_error(e);
        let Some(base_wafer) = base.wafer.clone() else {
            return Err(located(FieldError::new(
                "base",
                format!("`{}` is a cluster, not a wafer", base.name),
                "`base` names a wafer hardware file, e.g. \"../wafer-config3.toml\"",
            )));
        };
        let usable = file.usable_area_mm2.unwrap_or(base_wafer.usable_area_mm2);
        ranges::USABLE_AREA
            .check(
                "usable_area_mm2",
                usable,
                "usable wafer area in mm^2, e.g. 40000",
            )
            .map_err(located)?;
        let m = &file.mesh;
        let rows = whole(
            &expand(&m.rows, "mesh.rows", 1.0).map_err(located)?,
            "mesh.rows",
            ranges::MESH_SIDE,
            "dies per column, e.g. { min = 4, max = 10 }",
        )
        .map_err(located)?;
        let cols = whole(
            &expand(&m.cols, "mesh.cols", 1.0).map_err(located)?,
            "mesh.cols",
            ranges::MESH_SIDE,
            "dies per row, e.g. { min = 4, max = 10 }",
        )
        .map_err(located)?;
        let dies = match &m.dies {
            Some(d) => {
                let v = expand(d, "mesh.dies", 1.0).map_err(located)?;
                Some((v[0], v[v.len() - 1]))
            }
            None => None,
        };
        if let Some(a) = m.max_aspect {
            ranges::ASPECT
                .check("mesh.max_aspect", a, "longest side over shortest, e.g. 2")
                .map_err(located)?;
        }
        let wafers = match &m.wafers {
            Some(d) => whole(
                &expand(d, "mesh.wafers", 1.0).map_err(located)?,
                "mesh.wafers",
                ranges::WAFERS,
                "wafers, e.g. [1]",
            )
            .map_err(located)?,
            None => vec![1],
        };
        if wafers.iter().any(|w| *w > 1) && base_wafer.w2w_bw_tb_per_s.is_none() {
            return Err(located(FieldError::new(
                "mesh.wafers",
                "designs of several wafers need a wafer-to-wafer link, and `base` has none",
                "give `base` a hardware file with w2w_bw_tb_per_s, or wafers = [1]",
            )));
        }
        let mut shapes = Vec::new();
        for r in &rows {
            for c in &cols {
                let n = f64::from(r * c);
                let aspect = f64::from(*r.max(c)) / f64::from(*r.min(c));
                if (m.both_orientations || r <= c)
                    && dies.is_none_or(|(lo, hi)| n >= lo && n <= hi)
                    && m.max_aspect.is_none_or(|a| aspect <= a + 1e-12)
                {
                    shapes.push((*r, *c));
                }
            }
        }
        if shapes.is_empty() {
            return Err(located(FieldError::new(
                "mesh",
                "no mesh shape meets rows, cols, dies and max_aspect together",
                "widen the ranges (rows <= cols unless both_orientations = true)",
            )));
        }
        let peak_tflops = checked(
            &file.die.peak_tflops,
            "die.peak_tflops",
            ranges::PEAK_TFLOPS,
            "TFLOP/s per die, e.g. { min = 400, max = 1000, step = 100 }",
        )
        .map_err(located)?;
        let sram_mb_per_tflops = match &file.die.sram_mb_per_tflops {
            Some(d) => checked(
                d,
                "die.sram_mb_per_tflops",
                ranges::SRAM_PER_TFLOPS,
                "MB of SRAM per TFLOP/s, e.g. 0.625",
            )
            .map_err(located)?
            .into_iter()
            .map(Some)
            .collect(),
            None => vec![None],
        };
        let stacks = whole(
            &expand(&file.dram.stacks, "dram.stacks", 1.0).map_err(located)?,
            "dram.stacks",
            ranges::STACKS,
            "DRAM stacks per die, e.g. { min = 1, max = 4 }",
        )
        .map_err(located)?;
        let stack_gb = checked(
            &file.dram.stack_gb,
            "dram.stack_gb",
            ranges::DRAM_GB,
            "GB per stack, e.g. [24, 36]",
        )
        .map_err(located)?;
        let stack_tb_per_s = checked(
            &file.dram.stack_tb_per_s,
            "dram.stack_tb_per_s",
            ranges::BANDWIDTH_TB,
            "TB/s per stack, e.g. [0.8, 1.2]",
        )
        .map_err(located)?;
        let d2d_tb_per_s = checked(
            &file.d2d.bw_tb_per_s,
            "d2d.bw_tb_per_s",
            ranges::BANDWIDTH_TB,
            "TB/s per link and direction, e.g. [2, 4, 8]",
        )
        .map_err(located)?;
        if let Some(p) = &file.power {
            ranges::POWER_W
                .check(
                    "power.max_w_per_die",
                    p.max_w_per_die,
                    "watts per die, e.g. 1000",
                )
                .map_err(located)?;
        }
        let technologies = if file.technology.is_empty() {
            vec![Technology {
                name: "default".into(),
                area: base.area.clone().unwrap_or_default(),
                power: PowerModel::default(),
            }]
        } else {
            file.technology.clone()
        };
        for (i, t) in technologies.iter().enumerate() {
            t.area
                .validate()
                .map_err(|e| located(e.within(&format!("technology[{i}].area"))))?;
            t.power
                .validate()
                .map_err(|e| located(e.within(&format!("technology[{i}].power"))))?;
        }
        let space = DesignSpace {
            name: file.name,
            source: file.source,
            path: src.path.clone(),
            text: src.text.clone(),
            base,
            usable_area_mm2: usable,
            technologies,
            wafers,
            shapes,
            peak_tflops,
            sram_mb_per_tflops,
            stacks,
            stack_gb,
            stack_tb_per_s,
            d2d_tb_per_s,
            power: file.power,
            references,
        };
        let points = space.points_u128();
        if points > u128::from(MAX_POINTS) {
            return Err(located(FieldError::new(
                "name",
                format!("the space holds {points} designs"),
                format!("at most {MAX_POINTS}: narrow the ranges or split the space into files"),
            )));
        }
        Ok(space)
    }

    fn radices(&self) -> [u64; 9] {
        [
            self.technologies.len() as u64,
            self.wafers.len() as u64,
            self.shapes.len() as u64,
            self.peak_tflops.len() as u64,
            self.sram_mb_per_tflops.len() as u64,
            self.stacks.len() as u64,
            self.stack_gb.len() as u64,
            self.stack_tb_per_s.len() as u64,
            self.d2d_tb_per_s.len() as u64,
        ]
    }

    fn points_u128(&self) -> u128 {
        self.radices().iter().map(|r| u128::from(*r)).product()
    }

    /// Designs in the space, before the budgets.
    pub fn points(&self) -> u64 {
        self.radices().iter().product()
    }

    /// Design number `index` (`0..points()`), the last range varying fastest.
    pub fn design(&self, index: u64) -> Design {
        let mut digit = [0usize; 9];
        let mut rest = index;
        let radices = self.radices();
        for (d, r) in digit.iter_mut().zip(radices).rev() {
            *d = (rest % r) as usize;
            rest /= r;
        }
        let technology = digit[0];
        let (rows, cols) = self.shapes[digit[2]];
        let tflops = self.peak_tflops[digit[3]];
        let sram_ratio = self.sram_mb_per_tflops[digit[4]]
            .unwrap_or(self.technologies[technology].area.sram_mb_per_tflops);
        Design {
            index,
            technology,
            wafers: self.wafers[digit[1]],
            rows,
            cols,
            peak_tflops: tflops,
            sram_mb: sram_ratio * tflops,
            stacks: self.stacks[digit[5]],
            stack_gb: self.stack_gb[digit[6]],
            stack_tb_per_s: self.stack_tb_per_s[digit[7]],
            d2d_tb_per_s: self.d2d_tb_per_s[digit[8]],
        }
    }

    /// The hardware of a design: the base's efficiency, software and links, the design's dies,
    /// and its technology's area model with the design's stack.
    pub fn hardware(&self, d: &Design) -> Hardware {
        let tech = &self.technologies[d.technology];
        let base_wafer = self.base.wafer.clone().unwrap_or_else(|| Wafer {
            rows: 1,
            cols: 1,
            d2d_bw_tb_per_s: 1.0,
            d2d_latency_ns: 0.0,
            usable_area_mm2: self.usable_area_mm2,
            faulty_dies: Vec::new(),
            faulty_links: Vec::new(),
            wafers: 1,
            w2w_bw_tb_per_s: None,
            w2w_latency_ns: None,
        });
        let area = AreaModel {
            dram_stack_gb: d.stack_gb,
            dram_stack_tb_per_s: d.stack_tb_per_s,
            ..tech.area.clone()
        };
        Hardware {
            name: self.label(d),
            source: Some(format!("design {} of {}", d.index, self.name)),
            device: crate::hardware::Device {
                peak_tflops: d.peak_tflops,
                sram_mb: d.sram_mb,
                dram_gb: d.dram_gb(),
                dram_bw_tb_per_s: d.dram_tb_per_s(),
            },
            wafer: Some(Wafer {
                rows: d.rows,
                cols: d.cols,
                d2d_bw_tb_per_s: d.d2d_tb_per_s,
                usable_area_mm2: self.usable_area_mm2,
                faulty_dies: Vec::new(),
                faulty_links: Vec::new(),
                wafers: d.wafers,
                ..base_wafer
            }),
            cluster: None,
            efficiency: self.base.efficiency.clone(),
            software: self.base.software.clone(),
            area: Some(area),
        }
    }

    /// A design in a few words: `7x8 708 TF 2x35 GB/1 TB/s D2D 4`.
    pub fn label(&self, d: &Design) -> String {
        let tech = if self.technologies.len() > 1 {
            format!("{} ", self.technologies[d.technology].name)
        } else {
            String::new()
        };
        let wafers = if d.wafers > 1 {
            format!("{} x ", d.wafers)
        } else {
            String::new()
        };
        format!(
            "{tech}{wafers}{}x{} {} TF {}x{} GB/{} TB/s D2D {}",
            d.rows,
            d.cols,
            num(d.peak_tflops),
            d.stacks,
            num(d.stack_gb),
            num(d.stack_tb_per_s),
            num(d.d2d_tb_per_s)
        )
    }

    /// The designs whose device, mesh and links equal a hardware file's (the space "contains"
    /// it); area constants may differ, since a design's stacks are whole.
    pub fn find(&self, hw: &Hardware) -> Vec<Design> {
        let Some(w) = &hw.wafer else {
            return Vec::new();
        };
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0);
        (0..self.points())
            .map(|i| self.design(i))
            .filter(|d| {
                d.rows == w.rows
                    && d.cols == w.cols
                    && d.wafers == w.wafers
                    && close(d.peak_tflops, hw.device.peak_tflops)
                    && close(d.sram_mb, hw.device.sram_mb)
                    && close(d.dram_gb(), hw.device.dram_gb)
                    && close(d.dram_tb_per_s(), hw.device.dram_bw_tb_per_s)
                    && close(d.d2d_tb_per_s, w.d2d_bw_tb_per_s)
            })
            .collect()
    }
}

/// A number without trailing zeros.
pub(crate) fn num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
