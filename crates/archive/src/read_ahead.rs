//! A reader that runs on another thread, a few blocks ahead of the one reading from it.
//!
//! The second pass over a verified archive decompresses and splits the tar on one thread, while the other cores
//! sit idle: decompressing is half of that pass. Here the decompressor fills blocks on its own thread and the tar
//! is split from the blocks it hands over; blocks go back and forth, so the pass touches no fresh memory after its
//! first few blocks.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::mpsc;

/// Size of one block handed from the reading thread to the consumer.
const BLOCK: usize = 128 * 1024;
/// Blocks filled ahead of the consumer at most.
const DEPTH: usize = 4;

/// What the reading thread sends.
enum Message {
    /// A block and how many of its bytes are data.
    Data(Vec<u8>, usize),
    /// The source ended normally.
    End,
    /// The source failed; nothing follows.
    Failed(io::Error),
}

/// Runs `open` and reads what it returns on a new thread, and calls `consume` with a reader of those bytes on this
/// one. The thread stops when the source ends or fails, or when `consume` returns (reading ahead stops there).
pub(crate) fn read_ahead<S: Read, T>(
    open: impl FnOnce() -> io::Result<S> + Send,
    consume: impl FnOnce(&mut ReadAhead) -> T,
) -> T {
    let (filled, received) = mpsc::sync_channel(DEPTH);
    let (returned, spare) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || fill(open, &filled, &spare));
        let mut reader = ReadAhead {
            received,
            returned,
            block: Vec::new(),
            start: 0,
            end: 0,
            position: 0,
            finished: false,
        };
        consume(&mut reader)
        // `reader` is dropped here, before the scope waits for the thread: a thread blocked on a full channel
        // sees it closed and stops.
    })
}

/// The reading thread: fills blocks from the source until it ends or fails or nobody is listening.
fn fill<S: Read>(
    open: impl FnOnce() -> io::Result<S>,
    filled: &mpsc::SyncSender<Message>,
    spare: &mpsc::Receiver<Vec<u8>>,
) {
    let mut source = match open() {
        Ok(source) => source,
        Err(e) => {
            let _ = filled.send(Message::Failed(e));
            return;
        }
    };
    loop {
        // A returned block keeps its length, so it is not zeroed again.
        let mut block = spare.try_recv().unwrap_or_default();
        block.resize(BLOCK, 0);
        let mut len = 0;
        let mut failure = None;
        while len < block.len() {
            match source.read(&mut block[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let full = len == block.len();
        if len > 0 && filled.send(Message::Data(block, len)).is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = filled.send(Message::Failed(e));
            return;
        }
        if !full {
            let _ = filled.send(Message::End);
            return;
        }
    }
}

/// The consuming end of [`read_ahead`]. It seeks forward only (`SeekFrom::Current` with a non-negative offset),
/// which is all the tar reader asks of it to skip padding without a buffer of its own.
pub(crate) struct ReadAhead {
    received: mpsc::Receiver<Message>,
    returned: mpsc::Sender<Vec<u8>>,
    block: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes consumed so far (what a seek reports).
    position: u64,
    /// The source ended or failed: only end of file from here.
    finished: bool,
}

impl ReadAhead {
    /// The unread bytes of the current block, receiving the next block when it is used up; empty at the end.
    fn available(&mut self) -> io::Result<&[u8]> {
        while self.start == self.end && !self.finished {
            if self.block.capacity() > 0 {
                let _ = self.returned.send(std::mem::take(&mut self.block));
                (self.start, self.end) = (0, 0);
            }
            match self.received.recv() {
                Ok(Message::Data(block, len)) => {
                    self.block = block;
                    self.start = 0;
                    self.end = len;
                }
                Ok(Message::End) => self.finished = true,
                Ok(Message::Failed(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                // The thread always ends with `End` or `Failed`; without either, it died (a panic, which the
                // scope then reports).
                Err(_) => {
                    self.finished = true;
                    return Err(io::Error::other("the reading thread stopped before the end"));
                }
            }
        }
        Ok(&self.block[self.start..self.end])
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.position += n as u64;
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let available = self.available()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.advance(n);
        Ok(n)
    }
}

impl Seek for ReadAhead {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut left = forward_offset(to)?;
        while left > 0 {
            let available = self.available()?.len();
            if available == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "skipped past the end"));
            }
            let n = available.min(usize::try_from(left).unwrap_or(usize::MAX));
            self.advance(n);
            left -= n as u64;
        }
        Ok(self.position)
    }
}

/// How far a seek of a forward-only stream goes: `SeekFrom::Current` with a non-negative offset, the only seek the
/// tar reader asks for (to skip what it does not read); anything else is refused.
pub(crate) fn forward_offset(to: SeekFrom) -> io::Result<u64> {
    let refused = || io::Error::new(io::ErrorKind::Unsupported, "the stream only skips forward");
    match to {
        SeekFrom::Current(offset) => u64::try_from(offset).map_err(|_| refused()),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A source that hands out at most `step` bytes per read and fails after `fail_at` bytes, if set.
    struct Source {
        data: Vec<u8>,
        at: usize,
        step: usize,
        fail_at: Option<usize>,
    }

    impl Read for Source {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let limit = self.fail_at.unwrap_or(self.data.len());
            if self.at >= limit && self.fail_at.is_some() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "broken source"));
            }
            let n = out.len().min(self.step).min(limit - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    proptest! {
        /// Whatever the block boundaries, reads and forward skips see exactly the source's bytes, in order.
        #[test]
        fn reads_and_skips_see_the_source(
            len in 0usize..(3 * BLOCK + 100),
            step in 1usize..(BLOCK + 7),
            ops in proptest::collection::vec((any::<bool>(), 1usize..40_000), 1..60),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let source = Source { data: data.clone(), at: 0, step, fail_at: None };
            let seen = read_ahead(move || Ok(source), |reader| {
                let mut seen = Vec::new();
                let mut at = 0usize;
                for (skip, n) in &ops {
                    if *skip {
                        let want = (*n).min(len - at);
                        prop_assert_eq!(reader.seek(SeekFrom::Current(want as i64)).unwrap(), (at + want) as u64);
                        at += want;
                    } else {
                        let mut buf = vec![0; *n];
                        let got = reader.read(&mut buf).unwrap();
                        prop_assert_eq!(&buf[..got], &data[at..at + got]);
                        prop_assert!(got > 0 || at == len);
                        at += got;
                    }
                }
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).unwrap();
                seen.extend_from_slice(&data[..at]);
                seen.extend_from_slice(&rest);
                Ok(seen)
            })?;
            prop_assert_eq!(seen, data);
        }
    }

    /// A failing source is a read error after the bytes it gave, never a silent end of file.
    #[test]
    fn a_source_failure_is_an_error_after_its_bytes() {
        let data: Vec<u8> = (0..(2 * BLOCK + 5)).map(|i| i as u8).collect();
        let source = Source {
            data: data.clone(),
            at: 0,
            step: 1000,
            fail_at: Some(BLOCK + 3),
        };
        let (read, error) = read_ahead(
            move || Ok(source),
            |reader| {
                let mut read = Vec::new();
                let error = reader.read_to_end(&mut read).unwrap_err();
                (read, error)
            },
        );
        assert_eq!(read, &data[..BLOCK + 3]);
        assert_eq!(error.to_string(), "broken source");
        let opened = read_ahead(
            || Err::<Source, _>(io::Error::other("cannot open")),
            |reader| reader.read(&mut [0; 8]).unwrap_err().to_string(),
        );
        assert_eq!(opened, "cannot open");
    }

    /// A consumer that stops early does not hang on a thread still filling blocks.
    #[test]
    fn stopping_early_ends_the_thread() {
        let source = Source {
            data: vec![7; 40 * BLOCK],
            at: 0,
            step: BLOCK,
            fail_at: None,
        };
        let first = read_ahead(
            move || Ok(source),
            |reader| {
                let mut byte = [0; 1];
                reader.read_exact(&mut byte).unwrap();
                byte[0]
            },
        );
        assert_eq!(first, 7);
        let backwards = read_ahead(|| Ok(io::empty()), |reader| reader.seek(SeekFrom::Start(0)).is_err());
        assert!(backwards);
    }
}
