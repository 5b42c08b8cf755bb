//! The byte records packed tuples carry ([`crate::chunks`],
//! [`crate::results`], [`crate::lease`]): numbers as LEB128 varints
//! (signed ones zigzagged first), payloads prefixed by their length as a
//! varint, read back strictly (a short, ragged or overlong record is no
//! record).
//!
//! Why varints: what a record says besides its payload is ids, attempts
//! and times, and consecutive records differ in them by little. Written
//! as deltas from the record before ([`Deltas`]), a W1 task's head is 3
//! bytes instead of 20 and a result's about 8 instead of 36; every byte
//! of a record is copied, encrypted and replicated on each hop through a
//! ring (BENCHMARKS.md, "Issue 13, compact records").

/// Bytes a varint of a `u64` takes at most.
pub(crate) const VARINT_MAX: usize = 10;
/// Bytes a payload's length prefix takes at most (a `u32` varint).
pub(crate) const PAYLOAD_PREFIX: usize = 5;

/// Appends to a record buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }

    pub(crate) fn zigzag(&mut self, v: i64) -> &mut Self {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }

    /// The payload's length (at most `u32::MAX` bytes of it), then the
    /// payload.
    pub(crate) fn payload(&mut self, payload: &[u8]) -> &mut Self {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.varint(u64::from(len));
        self.0.extend_from_slice(&payload[..len as usize]);
        self
    }
}

/// Reads records back; every read is `None` past the end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A varint in its shortest form: one with a trailing zero group, or
    /// past 64 bits, is refused.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(VARINT_MAX) {
            let group = u64::from(byte & 0x7f);
            if i == VARINT_MAX - 1 && group > 1 {
                return None;
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return None;
                }
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    pub(crate) fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub(crate) fn payload(&mut self) -> Option<&'a [u8]> {
        let len = u32::try_from(self.varint()?).ok()? as usize;
        let (payload, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(payload)
    }
}

/// Numbers written as the difference from the same number of the record
/// before (the first from zero), so that a run of consecutive ids or
/// nearby times takes a byte or two each.
#[derive(Default)]
pub(crate) struct Deltas {
    last: u64,
}

impl Deltas {
    pub(crate) fn put(&mut self, w: &mut Writer, v: u64) {
        w.zigzag(v.wrapping_sub(self.last) as i64);
        self.last = v;
    }

    pub(crate) fn get(&mut self, r: &mut Reader) -> Option<u64> {
        self.last = self.last.wrapping_add(r.zigzag()? as u64);
        Some(self.last)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn what_is_written_reads_back_and_nothing_past_the_end() {
        let mut buf = Vec::new();
        Writer(&mut buf)
            .varint(7)
            .zigzag(-3)
            .varint(u64::MAX)
            .zigzag(i64::MIN)
            .payload(b"abc")
            .payload(b"");
        let mut r = Reader(&buf);
        assert_eq!(r.varint(), Some(7));
        assert_eq!(r.zigzag(), Some(-3));
        assert_eq!(r.varint(), Some(u64::MAX));
        assert_eq!(r.zigzag(), Some(i64::MIN));
        assert_eq!(r.payload(), Some(&b"abc"[..]));
        assert_eq!(r.payload(), Some(&b""[..]));
        assert!(r.is_empty());
        assert_eq!(r.varint(), None);
        let mut short = Reader(&buf[..buf.len() - 3]);
        short.varint();
        short.zigzag();
        short.varint();
        short.zigzag();
        assert_eq!(short.payload(), None, "a payload cut short");
    }

    #[test]
    fn small_numbers_take_a_byte_and_bad_varints_are_refused() {
        let mut buf = Vec::new();
        Writer(&mut buf).varint(127).zigzag(-64).zigzag(63);
        assert_eq!(buf.len(), 3);
        for bad in [
            &[0x80, 0x00][..], // a trailing zero group
            &[0xff; 10][..],   // past 64 bits
            &[0x80, 0x80][..], // cut short
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..],
        ] {
            assert_eq!(Reader(bad).varint(), None, "{bad:?}");
        }
        let mut r = Reader(&[0x80, 0x80, 0x80, 0x80, 0x10, 1]);
        assert_eq!(r.payload(), None, "a length past u32");
    }

    proptest! {
        #[test]
        fn deltas_read_back_whatever_the_numbers(values in prop::collection::vec(any::<u64>(), 0..40)) {
            let mut buf = Vec::new();
            let mut put = Deltas::default();
            for &v in &values {
                put.put(&mut Writer(&mut buf), v);
            }
            let (mut r, mut get) = (Reader(&buf), Deltas::default());
            let back: Vec<u64> = values.iter().map_while(|_| get.get(&mut r)).collect();
            prop_assert_eq!(back, values);
            prop_assert!(r.is_empty());
        }
    }
}
