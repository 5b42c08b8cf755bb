//! The wire protocol `/halley/space/1`: what a client and a node say to each
//! other on one long-lived libp2p stream.
//!
//! A client opens one stream and keeps it for its whole life; every request
//! carries an id chosen by the client, so many requests (blocked takes,
//! subscriptions, bulk writes) are in flight at once and their answers come
//! back in any order ([`message`]). Each message travels in one frame: a
//! big-endian `u32` length, then the message in bincode 2 ([`frame`]). Frames
//! are at most [`MAX_FRAME`] bytes; a reader refuses a longer length before it
//! allocates anything, and decoding never allocates past that limit.

pub mod frame;
pub mod message;
pub mod peer;

pub use frame::{
    FrameError, FrameReader, MAX_FRAME, encode, encode_request, encode_response, frames,
};
pub use message::{ErrorKind, Message, PeerStatus, Request, Response, RingMember, Status};
pub use peer::{LinkFrame, Member, PEER_PROTOCOL, PeerMessage};

use libp2p::StreamProtocol;

/// The protocol name clients and nodes negotiate on the stream.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/halley/space/1");

/// How many bytes of tuples one frame carries at most (by
/// [`Tuple::encoded_len_hint`](crate::Tuple::encoded_len_hint)): half a frame,
/// since the hint may undercount small values up to twice over. Bulk writes and
/// long answers are split into chunks of this size.
pub const CHUNK_BYTES: usize = MAX_FRAME / 2;

/// Splits `tuples` into runs whose size hints add up to at most
/// [`CHUNK_BYTES`]; a run holds at least one tuple.
pub fn chunks(tuples: Vec<crate::Tuple>) -> Vec<Vec<crate::Tuple>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    let mut size = 0;
    for tuple in tuples {
        let hint = tuple.encoded_len_hint();
        if !run.is_empty() && size + hint > CHUNK_BYTES {
            out.push(std::mem::take(&mut run));
            size = 0;
        }
        size += hint;
        run.push(tuple);
    }
    if !run.is_empty() || out.is_empty() {
        out.push(run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;

    #[test]
    fn small_batches_stay_whole() {
        let runs = chunks(vec![tuple!("a", 1_i64), tuple!("b", 2_i64)]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len(), 2);
        assert_eq!(chunks(Vec::new()), vec![Vec::new()]);
    }

    #[test]
    fn big_batches_split_below_the_chunk_size() {
        let blob = vec![0u8; 1 << 20];
        let tuples: Vec<_> = (0..20_i64).map(|i| tuple!(i, blob.clone())).collect();
        let runs = chunks(tuples);
        assert!(runs.len() >= 5, "{} runs", runs.len());
        assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 20);
        for run in &runs {
            let size: usize = run.iter().map(crate::Tuple::encoded_len_hint).sum();
            assert!(size <= CHUNK_BYTES, "run of {size} bytes");
        }
    }

    #[test]
    fn an_oversized_tuple_gets_a_run_of_its_own() {
        let blob = vec![0u8; CHUNK_BYTES + 1];
        let runs = chunks(vec![tuple!(1_i64), tuple!(blob), tuple!(2_i64)]);
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
    }
}
