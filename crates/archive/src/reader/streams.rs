//! The stream adapters stacked under the tar reader: taps that record failures, the keeper of the compressed
//! copy, the decompressed-size cap, and a forward-only skip.

use super::layers::{Ends, Failure, Layer, classify, record};
use crate::chunks::Chunks;
use crate::error::ArchiveError;
use crate::read_ahead;
use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

/// Passes reads through, recording the first error of its layer in the shared [`Failure`] slot.
pub(super) struct Tap<R> {
    pub(super) inner: R,
    pub(super) layer: Layer,
    pub(super) failure: Failure,
    pub(super) ends: Rc<Ends>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|e| record(&self.failure, || classify(self.layer, e, &self.ends)))?;
        if n == 0 && !buf.is_empty() && self.layer == Layer::Age {
            self.ends.age.set(true);
        }
        Ok(n)
    }
}

/// The raw input; remembers whether its end was reached (a failure at the end means "cut short or modified").
pub(super) struct InputTap<R> {
    pub(super) inner: R,
    pub(super) ends: Rc<Ends>,
}

impl<R: Read> Read for InputTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ends.input.set(true);
        }
        Ok(n)
    }
}

/// A forward-only stream the tar reader can skip in: the tar crate skips an entry's padding in a stream that
/// cannot seek by reading it into a 32 KB buffer it zeroes first, once per entry.
pub(super) struct SkipByReading<R> {
    pub(super) inner: R,
    /// Bytes read or skipped so far.
    pub(super) position: u64,
}

impl<R: Read> Read for SkipByReading<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read> Seek for SkipByReading<R> {
    /// Skips forward (`SeekFrom::Current` with a non-negative offset, all the tar reader asks); reads the skipped
    /// bytes, so every layer below still sees, and checks, the whole stream.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let offset = read_ahead::forward_offset(to)?;
        let skipped = io::copy(&mut (&mut self.inner).take(offset), &mut io::sink())?;
        self.position += skipped;
        if skipped != offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        Ok(self.position)
    }
}

/// Passes the decrypted, still compressed tar through and keeps a copy of it for the second pass; the copy is
/// capped like the decompressed bytes (zstd's skippable frames could otherwise make it grow without output).
pub(super) struct Keep<R> {
    pub(super) inner: R,
    pub(super) kept: Rc<RefCell<Chunks>>,
    pub(super) limit: u64,
    pub(super) failure: Failure,
}

impl<R: Read> Read for Keep<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut kept = self.kept.borrow_mut();
        if kept.len() + n as u64 > self.limit {
            record(&self.failure, || ArchiveError::TooLarge { limit: self.limit });
            return Err(io::Error::other("compressed size limit reached"));
        }
        kept.extend(&buf[..n]);
        Ok(n)
    }
}

/// Enforces [`ReadLimits::max_decompressed`].
pub(super) struct LimitTap<R> {
    pub(super) inner: R,
    pub(super) remaining: u64,
    pub(super) limit: u64,
    pub(super) failure: Failure,
}

impl<R: Read> Read for LimitTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow a read of zero bytes at the exact limit only if the stream really ends here.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            record(&self.failure, || ArchiveError::TooLarge { limit: self.limit });
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let max = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads `source` to its end into `out[start..]` and returns how many bytes came.
///
/// `out` is a buffer reused from entry to entry, its length a high-water mark: only bytes past that mark are zeroed
/// (std's `read_to_end` zeroes the room for every read, a noticeable share of an unpack's time). It grows at most
/// [`FILL_STEP`] ahead of the bytes that arrived, so a size field alone never makes it allocate.
pub(super) fn fill_from<R: Read>(source: &mut R, out: &mut Vec<u8>, start: usize) -> io::Result<usize> {
    let mut end = start;
    loop {
        if end >= out.len() {
            out.resize(end + FILL_STEP, 0);
        }
        match source.read(&mut out[end..]) {
            Ok(0) => return Ok(end - start),
            Ok(n) => end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How far [`fill_from`] grows its buffer ahead of the data.
pub(super) const FILL_STEP: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::batch::{TarFailure, read_entry_into};

    /// A reused buffer keeps its length (nothing is zeroed again); it grows with the bytes that arrive, never
    /// with what a size field claims.
    #[test]
    fn fill_from_reuses_its_buffer_and_grows_only_with_the_data() {
        let mut buffer = vec![b'x'; 100];
        assert_eq!(fill_from(&mut &b"abc"[..], &mut buffer, 10).unwrap(), 3);
        assert_eq!(&buffer[8..14], b"xxabcx");
        assert_eq!(buffer.len(), 100);

        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let read = fill_from(&mut &big[..], &mut buffer, 50).unwrap();
        assert_eq!(read, big.len());
        assert_eq!(&buffer[50..50 + read], &big[..]);
        assert!(buffer.len() <= 50 + big.len() + FILL_STEP, "{}", buffer.len());

        let mut fresh = Vec::new();
        let claimed_terabyte = read_entry_into(&mut &b"short"[..], 1 << 40, &mut fresh, 0);
        assert!(matches!(claimed_terabyte, Err(TarFailure::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        assert!(fresh.len() <= FILL_STEP, "{}", fresh.len());
    }

    /// The pass-one stream skips forward by reading (so the layers below see every byte) and refuses the rest.
    #[test]
    fn the_archive_stream_skips_forward_only() {
        let data: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let mut stream = SkipByReading {
            inner: &data[..],
            position: 0,
        };
        let mut head = [0; 10];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(stream.seek(SeekFrom::Current(500)).unwrap(), 510);
        stream.read_exact(&mut head).unwrap();
        assert_eq!(head[0], data[510]);
        assert!(stream.seek(SeekFrom::Current(-1)).is_err());
        assert!(stream.seek(SeekFrom::Start(0)).is_err());
        let past_end = stream.seek(SeekFrom::Current(5000)).unwrap_err();
        assert_eq!(past_end.kind(), io::ErrorKind::UnexpectedEof);
    }
}
