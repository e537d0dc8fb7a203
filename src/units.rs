//! SI scale factors for the edges (files, flags, printed tables); everything inside is SI.

/// 10^6 bytes.
pub const MB: f64 = 1e6;
/// 10^9 bytes.
pub const GB: f64 = 1e9;
/// 2^30 bytes (published GPU memory figures are in GiB).
pub const GIB: f64 = 1_073_741_824.0;
/// 10^12 bytes.
pub const TB: f64 = 1e12;
/// 10^12 (TFLOP/s).
pub const TERA: f64 = 1e12;
/// 10^-9 s.
pub const NS: f64 = 1e-9;
/// 10^-6 s.
pub const US: f64 = 1e-6;
/// 10^-3 s.
pub const MS: f64 = 1e-3;
