//! The byte records packed tuples carry ([`crate::chunks`], [`crate::results`]):
//! fixed-width little-endian numbers and length-prefixed payloads, read
//! back strictly (a short or ragged record is no record).

/// Appends to a record buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// The payload's length as a u32, then the payload (at most
    /// `u32::MAX` bytes of it).
    pub(crate) fn payload(&mut self, payload: &[u8]) -> &mut Self {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&payload[..len as usize]);
        self
    }
}

/// Bytes a payload's length prefix takes.
pub(crate) const PAYLOAD_PREFIX: usize = 4;

/// Reads records back; every read is `None` past the end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_le_bytes)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.bytes().map(i64::from_le_bytes)
    }

    pub(crate) fn payload(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.bytes()?) as usize;
        let (payload, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_nothing_past_the_end() {
        let mut buf = Vec::new();
        Writer(&mut buf).u64(7).i64(-3).payload(b"abc").payload(b"");
        let mut r = Reader(&buf);
        assert_eq!(r.u64(), Some(7));
        assert_eq!(r.i64(), Some(-3));
        assert_eq!(r.payload(), Some(&b"abc"[..]));
        assert_eq!(r.payload(), Some(&b""[..]));
        assert!(r.is_empty());
        assert_eq!(r.u64(), None);
        let mut short = Reader(&buf[..buf.len() - 6]);
        short.u64();
        short.i64();
        assert_eq!(short.payload(), None, "a payload cut short");
    }
}
