//! Framing: a big-endian `u32` length, then one bincode-2 [`Message`].
//!
//! [`FrameReader`] turns a byte stream into messages. It is a
//! [`futures::Stream`] that keeps a half-read frame inside itself, so a
//! `select!` may drop its `next()` future without losing bytes. It refuses a
//! length over [`MAX_FRAME`] before allocating, and decodes with a bincode
//! limit of the same size, so no input makes it allocate more. [`encode`]
//! appends a frame to a buffer that the caller reuses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use futures::{AsyncRead, Stream};
use serde::Serialize;

use super::message::{Message, Request, Response};

/// The largest frame body, in bytes.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// A buffer that grew past this for one big frame is let go afterwards.
const KEEP_CAPACITY: usize = 1 << 20;

const CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_FRAME>> =
    bincode::config::standard().with_limit::<MAX_FRAME>();

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    /// Within the limit on the wire, but its decoded form (whose every
    /// value counts at its size in memory) is not.
    #[error("message too large: its {0}-byte frame decodes past the limit of {MAX_FRAME} bytes")]
    TooLargeDecoded(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("the stream ended in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl FrameError {
    /// Whether the sender broke the protocol (a frame malformed or over
    /// the limit), rather than the stream breaking under it (a reset, or
    /// an end in the middle of a frame: a process killed while writing).
    pub fn is_bad_frame(&self) -> bool {
        !matches!(self, FrameError::Truncated | FrameError::Io(_))
    }
}

/// Appends `message` as one frame to `buf`; on error `buf` is left as it was.
pub fn encode(buf: &mut Vec<u8>, message: &Message) -> Result<(), FrameError> {
    encode_value(buf, message)
}

/// Appends the frame of request `id` to `buf`, like [`encode`] without
/// building a [`Message`].
pub fn encode_request(buf: &mut Vec<u8>, id: u64, request: &Request) -> Result<(), FrameError> {
    encode_value(buf, &MessageRef::Request { id, request })
}

/// Appends the frame of answer `id` to `buf`, like [`encode`] without
/// building a [`Message`].
pub fn encode_response(buf: &mut Vec<u8>, id: u64, response: &Response) -> Result<(), FrameError> {
    encode_value(buf, &MessageRef::Response { id, response })
}

/// [`Message`] by reference: the same variants in the same order, so the
/// same bytes.
#[derive(Serialize)]
enum MessageRef<'a> {
    Request { id: u64, request: &'a Request },
    Response { id: u64, response: &'a Response },
}

fn encode_value<T: Serialize>(buf: &mut Vec<u8>, value: &T) -> Result<(), FrameError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let written = bincode::serde::encode_into_std_write(value, buf, CONFIG);
    let len = buf.len() - start - 4;
    match written {
        // A big frame is decoded here once, as its reader will: one that
        // reader would refuse is refused now, as too large, not sent to
        // have the stream closed on it.
        Ok(_) if len > MAX_FRAME / 2 && len <= MAX_FRAME && decode(&buf[start + 4..]).is_err() => {
            buf.truncate(start);
            Err(FrameError::TooLargeDecoded(len))
        }
        Ok(_) if len <= MAX_FRAME => {
            let prefix = u32::try_from(len).expect("MAX_FRAME fits in u32");
            buf[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
            Ok(())
        }
        Ok(_) => {
            buf.truncate(start);
            Err(FrameError::TooLarge(len))
        }
        Err(e) => {
            buf.truncate(start);
            Err(FrameError::Malformed(e.to_string()))
        }
    }
}

/// Decodes one frame body (without its length prefix).
pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    let (message, used) = bincode::serde::decode_from_slice::<Message, _>(body, CONFIG)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(FrameError::Malformed(format!(
            "{} bytes left after the message",
            body.len() - used
        )));
    }
    Ok(message)
}

/// The messages read from `reader`, frame by frame.
pub fn frames<R: AsyncRead + Unpin>(reader: R) -> FrameReader<R> {
    FrameReader {
        reader,
        header: [0; 4],
        body: Vec::new(),
        filled: 0,
        state: State::Header,
    }
}

/// A stream of decoded messages; it ends at a clean end of input (between
/// frames) and after the first error.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    header: [u8; 4],
    body: Vec<u8>,
    filled: usize,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Body(usize),
    Done,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn fail(&mut self, error: FrameError) -> Poll<Option<Result<Message, FrameError>>> {
        self.state = State::Done;
        self.body = Vec::new();
        Poll::Ready(Some(Err(error)))
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameReader<R> {
    type Item = Result<Message, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Header => {
                    let read =
                        Pin::new(&mut this.reader).poll_read(cx, &mut this.header[this.filled..]);
                    match ready!(read) {
                        Err(e) => return this.fail(e.into()),
                        Ok(0) if this.filled == 0 => {
                            this.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(0) => return this.fail(FrameError::Truncated),
                        Ok(n) => this.filled += n,
                    }
                    if this.filled == 4 {
                        let len = u32::from_be_bytes(this.header) as usize;
                        if len > MAX_FRAME {
                            return this.fail(FrameError::TooLarge(len));
                        }
                        if this.body.capacity() > KEEP_CAPACITY && len <= KEEP_CAPACITY {
                            this.body = Vec::new();
                        }
                        this.body.clear();
                        this.body.resize(len, 0);
                        this.filled = 0;
                        this.state = State::Body(len);
                    }
                }
                State::Body(len) => {
                    if this.filled < len {
                        let read = Pin::new(&mut this.reader)
                            .poll_read(cx, &mut this.body[this.filled..len]);
                        match ready!(read) {
                            Err(e) => return this.fail(e.into()),
                            Ok(0) => return this.fail(FrameError::Truncated),
                            Ok(n) => this.filled += n,
                        }
                    }
                    if this.filled == len {
                        this.filled = 0;
                        this.state = State::Header;
                        return match decode(&this.body[..len]) {
                            Ok(message) => Poll::Ready(Some(Ok(message))),
                            Err(e) => this.fail(e),
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;
    use crate::template::{Field, Template};
    use crate::tuple;

    fn sample() -> Vec<Message> {
        vec![
            Message::Request {
                id: 1,
                request: Request::Out {
                    tuples: vec![tuple!("ping", 7_i64), tuple!(1.5, true, vec![1u8, 2])],
                    ttl: Some(Duration::from_secs(30)),
                },
            },
            Message::Request {
                id: u64::MAX,
                request: Request::Take {
                    template: Template::new(vec![Field::Actual("ping".into()), Field::Any]),
                    max: 1,
                    timeout: None,
                },
            },
            Message::Response {
                id: 2,
                response: Response::Tuples(vec![tuple!("pong", -3_i64)]),
            },
            Message::Response {
                id: 3,
                response: Response::refused("no"),
            },
        ]
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Message, FrameError>> {
        block_on(frames(bytes).collect())
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        for m in sample() {
            encode(&mut buf, &m).unwrap();
        }
        let back: Vec<Message> = read_all(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(back, sample());
    }

    #[test]
    fn borrowed_encodings_match_owned_ones() {
        for m in sample() {
            let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
            encode(&mut owned, &m).unwrap();
            match &m {
                Message::Request { id, request } => encode_request(&mut borrowed, *id, request),
                Message::Response { id, response } => encode_response(&mut borrowed, *id, response),
                Message::Peer(_) | Message::Link(_) => encode(&mut borrowed, &m),
            }
            .unwrap();
            assert_eq!(owned, borrowed);
        }
    }

    #[test]
    fn an_over_limit_length_is_refused_before_reading_the_body() {
        let len = (MAX_FRAME as u32 + 1).to_be_bytes();
        let got = read_all(&len);
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0], Err(FrameError::TooLarge(n)) if n == MAX_FRAME + 1));
    }

    #[test]
    fn a_frame_within_the_limit_that_decodes_past_it_is_refused_as_too_large() {
        let out = |len: usize| Request::Out {
            tuples: vec![tuple!("big", "a".repeat(len))],
            ttl: None,
        };
        let mut buf = Vec::new();
        let err = encode_request(&mut buf, 1, &out(MAX_FRAME - 40)).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLargeDecoded(n) if n < MAX_FRAME),
            "{err}"
        );
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(buf.is_empty());
        // Half the limit and a little more still goes, and reads back.
        encode_request(&mut buf, 2, &out(MAX_FRAME / 2 + 1_000)).unwrap();
        assert!(matches!(
            read_all(&buf)[..],
            [Ok(Message::Request { id: 2, .. })]
        ));
    }

    #[test]
    fn garbage_and_truncation_are_errors_that_end_the_stream() {
        let mut junk = 5u32.to_be_bytes().to_vec();
        junk.extend_from_slice(&[0xff; 5]);
        junk.extend_from_slice(&[0, 0, 0, 1, 0]);
        let got = read_all(&junk);
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0], Err(FrameError::Malformed(_))));

        let mut buf = Vec::new();
        encode(&mut buf, &sample()[0]).unwrap();
        buf.pop();
        let got = read_all(&buf);
        assert!(matches!(got[..], [Err(FrameError::Truncated)]));
        assert!(read_all(&[]).is_empty());
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_malformed() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample()[2]).unwrap();
        buf.push(0);
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            read_all(&buf)[..],
            [Err(FrameError::Malformed(_))]
        ));
    }

    #[test]
    fn an_oversized_message_is_not_encoded() {
        let big = Message::Request {
            id: 9,
            request: Request::Out {
                tuples: vec![tuple!(vec![0u8; MAX_FRAME])],
                ttl: None,
            },
        };
        let mut buf = vec![1, 2, 3];
        assert!(matches!(
            encode(&mut buf, &big),
            Err(FrameError::TooLarge(_))
        ));
        assert_eq!(buf, vec![1, 2, 3]);
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body);
        }

        #[test]
        fn random_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let got = read_all(&bytes);
            prop_assert!(got.iter().filter(|r| r.is_err()).count() <= 1);
        }

        #[test]
        fn claimed_huge_lengths_inside_a_body_are_refused(id in any::<u64>(), claim in any::<u64>()) {
            // A Request::Out whose vector claims `claim` tuples but holds none.
            let mut body = Vec::new();
            body.push(0); // Message::Request
            bincode::encode_into_std_write(id, &mut body, bincode::config::standard()).unwrap();
            body.push(0); // Request::Out
            bincode::encode_into_std_write(claim, &mut body, bincode::config::standard()).unwrap();
            prop_assume!(claim > 0);
            prop_assert!(decode(&body).is_err());
        }
    }
}
