//! Bytes held in chunks of a fixed size. One growing buffer is copied at every doubling and, for the length of each
//! copy, held twice: for the reader's kept copy of a whole archive and the writer's manifest (megabytes of JSON),
//! that was as much fresh memory again as the data, and fresh memory is what the kernel must zero first.

use std::io::{self, BufRead, Read, Write};

/// Bytes appended in 1 MB chunks, read back front to back.
#[derive(Clone, Default)]
pub(crate) struct Chunks {
    chunks: Vec<Vec<u8>>,
    len: u64,
}

impl Chunks {
    pub(crate) const SIZE: usize = 1 << 20;

    /// Appends `bytes`.
    pub(crate) fn extend(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            let last = match self.chunks.last_mut() {
                Some(last) if last.len() < Self::SIZE => last,
                _ => {
                    self.chunks.push(Vec::with_capacity(Self::SIZE));
                    self.chunks.last_mut().expect("just pushed")
                }
            };
            let n = bytes.len().min(Self::SIZE - last.len());
            last.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    /// How many bytes are held.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Reads the bytes from the first.
    pub(crate) fn reader(&self) -> ChunksReader<'_> {
        ChunksReader {
            rest: &self.chunks,
            offset: 0,
        }
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.extend(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunks({} bytes)", self.len)
    }
}

/// Reads [`Chunks`] front to back.
pub(crate) struct ChunksReader<'a> {
    rest: &'a [Vec<u8>],
    offset: usize,
}

impl BufRead for ChunksReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while let Some(first) = self.rest.first() {
            if self.offset < first.len() {
                return Ok(&first[self.offset..]);
            }
            self.rest = &self.rest[1..];
            self.offset = 0;
        }
        Ok(&[])
    }

    fn consume(&mut self, amount: usize) {
        self.offset += amount;
    }
}

impl Read for ChunksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sizes of the writes that fill it, the chunks read back as the very same bytes.
        #[test]
        fn chunks_read_back_what_was_written(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..40),
            big in 0usize..3,
        ) {
            let mut chunks = Chunks::default();
            let mut expected = Vec::new();
            // Pieces straddle chunk boundaries once a piece of a chunk's size or more is added.
            let filler = vec![7u8; big * Chunks::SIZE + 13];
            for (i, piece) in pieces.iter().chain(std::iter::once(&filler)).chain(&pieces).enumerate() {
                // Both ways in: appended, and written as serializers do.
                if i % 2 == 0 {
                    chunks.extend(piece);
                } else {
                    chunks.write_all(piece).unwrap();
                }
                expected.extend_from_slice(piece);
            }
            prop_assert_eq!(chunks.len(), expected.len() as u64);
            prop_assert!(chunks.chunks.iter().all(|c| c.len() <= Chunks::SIZE));
            let mut read = Vec::new();
            chunks.reader().read_to_end(&mut read).unwrap();
            prop_assert!(read == expected);
        }
    }
}
