//! Line readers for plain or zstd-compressed JSON Lines files.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::marker::PhantomData;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Why one line could not be turned into a record.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The line is not valid JSON for the expected record type.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    Utf8,
}

/// Opens `path` for reading, transparently decompressing when it ends in `.zst`.
pub fn open_maybe_zstd(path: impl AsRef<Path>) -> io::Result<Box<dyn Read + Send>> {
    let path = path.as_ref();
    let file = File::open(path)?;
    if path.extension().is_some_and(|e| e == "zst") {
        Ok(Box::new(zstd::stream::read::Decoder::new(file)?))
    } else {
        Ok(Box::new(file))
    }
}

/// Reads raw lines with their 1-based line numbers (`\n` and `\r\n` endings removed).
///
/// A line that is not valid UTF-8 is yielded as `Err(LineError::Utf8)`, not as an I/O
/// error, so callers can count it and go on.
pub struct LineReader {
    inner: BufReader<Box<dyn Read + Send>>,
    line_no: u64,
    buf: Vec<u8>,
}

impl LineReader {
    /// Opens a plain or `.zst` file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(open_maybe_zstd(path)?))
    }

    /// Wraps any reader (already decompressed).
    pub fn new(r: Box<dyn Read + Send>) -> Self {
        Self {
            inner: BufReader::with_capacity(1 << 20, r),
            line_no: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Next line: `Ok(None)` at end of input, `Err` on an I/O error.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Result<String, LineError>)>> {
        self.buf.clear();
        let n = self.inner.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        let line = String::from_utf8(std::mem::take(&mut self.buf)).map_err(|_| LineError::Utf8);
        Ok(Some((self.line_no, line)))
    }
}

impl Iterator for LineReader {
    type Item = io::Result<(u64, Result<String, LineError>)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

/// Parses each line of a JSON Lines file into `T`, yielding `(line_number, result)`.
///
/// Malformed lines are yielded as `Err` and reading goes on. An I/O error (unreadable
/// file, corrupt zstd stream) ends the iteration; check [`JsonlReader::io_error`] after it.
pub struct JsonlReader<T> {
    lines: LineReader,
    io_error: Option<io::Error>,
    _t: PhantomData<T>,
}

impl<T: DeserializeOwned> JsonlReader<T> {
    /// Opens a plain or `.zst` file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self {
            lines: LineReader::open(path)?,
            io_error: None,
            _t: PhantomData,
        })
    }

    /// The I/O error that stopped the iteration early, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.io_error.as_ref()
    }
}

impl<T: DeserializeOwned> Iterator for JsonlReader<T> {
    type Item = (u64, Result<T, LineError>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.io_error.is_some() {
            return None;
        }
        match self.lines.next_line() {
            Ok(None) => None,
            Ok(Some((n, Ok(line)))) => {
                Some((n, serde_json::from_str(&line).map_err(LineError::from)))
            }
            Ok(Some((n, Err(e)))) => Some((n, Err(e))),
            Err(e) => {
                self.io_error = Some(e);
                None
            }
        }
    }
}
