//! A look at the age header before the age crate reads it.
//!
//! The age crate parses a header again from its start after every line it reads, so a header of many lines takes
//! time that grows with its lines times its bytes; age's own headers are a few hundred bytes per recipient.
//! [`HeaderGuard`] passes the (de-armored) file through, refuses a header longer than [`MAX_HEADER`] bytes or
//! [`MAX_HEADER_LINES`] lines before the crate sees all of it, and
//! remembers what the header holds, so that errors can say what is wrong with it (a passphrase stanza beside key
//! stanzas, an scrypt work factor beyond the cap) instead of calling the file truncated.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// Largest age header read, in bytes: room for hundreds of X25519 recipients (about 100 bytes and 2 lines each),
/// dozens of RSA-4096 (700 bytes, 12 lines) or post-quantum ones (1,600 bytes, 26 lines).
pub(crate) const MAX_HEADER: usize = 64 * 1024;
/// Largest age header read, in lines: the age crate's cost grows with lines times bytes, and many short lines
/// would otherwise cost as much as a huge header.
pub(crate) const MAX_HEADER_LINES: usize = 1024;

/// What the header held, as far as it was read.
#[derive(Debug, Default)]
pub(crate) struct HeaderFacts {
    /// The header bytes read so far (all of them once `complete`).
    bytes: Vec<u8>,
    /// The MAC line (`--- …`) was read to its end.
    pub(crate) complete: bool,
    /// Lines read so far.
    lines: usize,
    /// The header went past [`MAX_HEADER`] or [`MAX_HEADER_LINES`] without ending.
    pub(crate) too_large: bool,
}

impl HeaderFacts {
    /// The stanza types, in order (`X25519`, `scrypt`, `ssh-ed25519`, …).
    pub(crate) fn stanza_types(&self) -> Vec<&str> {
        self.stanza_lines().filter_map(|args| args.split(' ').next()).collect()
    }

    /// The work factor (log2 N) a `scrypt` stanza asks for, if there is one that states it.
    pub(crate) fn scrypt_work_factor(&self) -> Option<u8> {
        self.stanza_lines()
            .find_map(|args| args.strip_prefix("scrypt "))
            .and_then(|args| args.split(' ').nth(1))
            .and_then(|log_n| log_n.parse().ok())
    }

    /// The argument line of every stanza (what follows `-> `).
    fn stanza_lines(&self) -> impl Iterator<Item = &str> {
        self.bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| line.strip_prefix(b"-> "))
            .filter_map(|args| std::str::from_utf8(args).ok())
    }
}

/// Passes an age file through and watches its header; see the module documentation.
pub(crate) struct HeaderGuard<R> {
    inner: R,
    facts: Rc<RefCell<HeaderFacts>>,
}

impl<R> HeaderGuard<R> {
    /// Watches `inner`; what it finds is shared through the returned handle.
    pub(crate) fn new(inner: R) -> (Self, Rc<RefCell<HeaderFacts>>) {
        let facts = Rc::new(RefCell::new(HeaderFacts::default()));
        (
            HeaderGuard {
                inner,
                facts: facts.clone(),
            },
            facts,
        )
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut facts = self.facts.borrow_mut();
        if facts.complete {
            return Ok(n);
        }
        for &byte in &buf[..n] {
            facts.bytes.push(byte);
            if byte == b'\n' {
                if mac_line_ends(&facts.bytes) {
                    facts.complete = true;
                    return Ok(n);
                }
                facts.lines += 1;
            }
            if facts.bytes.len() > MAX_HEADER || facts.lines > MAX_HEADER_LINES {
                facts.too_large = true;
                return Err(io::Error::other("the age header is too large"));
            }
        }
        Ok(n)
    }
}

/// Whether `header`, which ends in a line feed, ends with the MAC line (`--- ` at the start of a line).
fn mac_line_ends(header: &[u8]) -> bool {
    let body = &header[..header.len() - 1];
    let line_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    body[line_start..].starts_with(b"---")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(input: &[u8]) -> (io::Result<Vec<u8>>, Rc<RefCell<HeaderFacts>>) {
        let (mut guard, facts) = HeaderGuard::new(input);
        let mut out = Vec::new();
        let result = guard.read_to_end(&mut out).map(|_| out);
        (result, facts)
    }

    #[test]
    fn the_header_is_seen_and_the_rest_passes() {
        let file =
            b"age-encryption.org/v1\n-> X25519 abc\nBODY\n-> scrypt c2FsdA 18\nQk9EWQ\n--- bWFj\n\x00payload\n---x";
        let (read, facts) = watch(file);
        assert_eq!(read.unwrap(), file);
        let facts = facts.borrow();
        assert!(facts.complete && !facts.too_large);
        assert_eq!(facts.stanza_types(), ["X25519", "scrypt"]);
        assert_eq!(facts.scrypt_work_factor(), Some(18));
    }

    #[test]
    fn a_header_past_the_cap_is_refused_and_a_cut_one_is_incomplete() {
        let mut huge = b"age-encryption.org/v1\n-> unknown\n".to_vec();
        huge.extend(std::iter::repeat_n(&[b'Q'; 100], MAX_HEADER / 100 + 1).flatten());
        huge.push(b'\n');
        let (read, facts) = watch(&huge);
        assert!(read.is_err());
        assert!(facts.borrow().too_large && !facts.borrow().complete);
        let mut many = b"age-encryption.org/v1\n".to_vec();
        many.extend(std::iter::repeat_n(b"-> x\n\n".as_slice(), MAX_HEADER_LINES / 2 + 1).flatten());
        let (read, facts) = watch(&many);
        assert!(read.is_err() && facts.borrow().too_large);
        let (read, facts) = watch(b"age-encryption.org/v1\n-> X25519 abc\n");
        assert!(read.is_ok());
        assert!(!facts.borrow().complete && !facts.borrow().too_large);
    }
}
