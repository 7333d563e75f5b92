//! Weight preparation: optional dequantisation of a GGUF to f32 before loading.
//!
//! candle's CPU kernels for quantised matmuls use SIMD only when the crate is compiled with
//! the matching target features (`-C target-cpu=native`), and Q4_1 has no SIMD kernel at all,
//! so a portable build computes them with scalar code. f32 matmuls go through `gemm`, which
//! picks AVX2/FMA at run time. Dequantising trades memory (4 bytes per parameter: ~540 MB for a
//! 135M model) for speed on a portable build: SmolLM2-135M Q4_1 on 2 shared cores went from
//! ~10 to ~16 tokens/s decode and from 2.5–5.8 s to 0.6 s for a 42-token prompt.

use anyhow::Result;
use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use std::io::{Cursor, Read, Seek};

/// Rewrites `content`'s tensors as f32 into an in-memory GGUF; returns its parsed header and a
/// reader over it.
pub fn dequantize_all<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
) -> Result<(Content, Cursor<Vec<u8>>)> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let q = content.tensor(reader, name, &Device::Cpu)?;
        let f = if q.dtype() == GgmlDType::F32 {
            q
        } else {
            QTensor::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::F32)?
        };
        tensors.push((name.as_str(), f));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut buf = Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &metadata, &refs)?;
    drop(tensors);
    buf.set_position(0);
    let out = Content::read(&mut buf)?;
    Ok((out, buf))
}
