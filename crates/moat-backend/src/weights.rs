//! Weight preparation: optional dequantisation of a GGUF to f32 before loading.
//!
//! candle's CPU kernels for quantised matmuls use SIMD only when the crate is compiled with
//! the matching target features (`-C target-cpu=native`), and Q4_1 has no SIMD kernel at all,
//! so a portable build computes them with scalar code. f32 matmuls go through `gemm`, which
//! picks AVX2/FMA at run time. Dequantising trades memory (4 bytes per parameter: ~540 MB for a
//! 135M model) for speed on a portable build: SmolLM2-135M Q4_1 on 2 shared cores went from
//! ~10 to ~16 tokens/s decode and from 2.5–5.8 s to 0.6 s for a 42-token prompt.

use anyhow::Result;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};

/// Rewrites `content`'s quantised tensors as f32 into an in-memory GGUF tensor section; the
/// returned `Content` reads from the returned cursor.
pub fn dequantize_all<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
) -> Result<(Content, Cursor<Vec<u8>>)> {
    let mut infos = HashMap::with_capacity(content.tensor_infos.len());
    let mut data = Vec::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let q = content.tensor(reader, name, &Device::Cpu)?;
        let shape = q.shape().clone();
        let values = q
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let offset = data.len() as u64;
        data.reserve(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        infos.insert(
            name.clone(),
            TensorInfo {
                ggml_dtype: GgmlDType::F32,
                shape,
                offset,
            },
        );
    }
    let out = Content {
        magic: content.magic,
        metadata: content.metadata.clone(),
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((out, Cursor::new(data)))
}
