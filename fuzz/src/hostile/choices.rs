//! The fuzz input read as a sequence of choices, front to back: a byte
//! picks among at most 256 things, eight make a number. Past the end every
//! choice is zero, so any input is a whole run.

pub(super) struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    pub(super) fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        first
    }

    /// One of `0..n` (`n` from 1 to 256).
    pub(super) fn below(&mut self, n: usize) -> usize {
        debug_assert!((1..=256).contains(&n));
        self.byte() as usize % n
    }

    pub(super) fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub(super) fn u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    /// The next `n` bytes, or fewer at the end.
    pub(super) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }
}
