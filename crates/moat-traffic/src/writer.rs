//! JSON Lines writer, plain or zstd-compressed by file extension.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

/// Writes one JSON value per line. Paths ending in `.zst` are zstd-compressed.
///
/// Call [`JsonlWriter::finish`] at the end: it flushes and, for `.zst`, writes the
/// zstd frame end (dropping the writer without `finish` also tries to, ignoring errors).
pub struct JsonlWriter {
    sink: Option<Sink>,
}

impl JsonlWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let sink = if path.extension().is_some_and(|e| e == "zst") {
            Sink::Zstd(zstd::stream::write::Encoder::new(file, 3)?)
        } else {
            Sink::Plain(file)
        };
        Ok(Self { sink: Some(sink) })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self.sink.as_mut().expect("writer already finished") {
            Sink::Plain(w) => w,
            Sink::Zstd(w) => w,
        }
    }

    /// Writes `value` as one line of JSON.
    pub fn write<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        let out = self.out();
        serde_json::to_writer(&mut *out, value)?;
        out.write_all(b"\n")
    }

    /// Writes an already serialised JSON line (a trailing newline is added).
    pub fn write_raw_line(&mut self, line: &str) -> io::Result<()> {
        let out = self.out();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    }

    /// Flushes everything and closes the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.close()
    }

    fn close(&mut self) -> io::Result<()> {
        match self.sink.take() {
            Some(Sink::Plain(mut w)) => w.flush(),
            Some(Sink::Zstd(w)) => w.finish()?.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
