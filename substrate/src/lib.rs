//! The Comet space: tuples and templates, the local store, and the libp2p
//! node that serves them.
//!
//! Who talks to whom: [`space::Space`] is the API everything above this crate
//! uses. The embedded space drives a sans-io [`store::Store`] directly; the
//! libp2p node serves the same store to remote clients.

pub mod client;
pub mod embedded;
pub mod keyspace;
pub mod net;
pub mod node;
pub mod overlay;
pub mod ring;
pub mod space;
pub mod spin;
pub mod store;
pub mod syntax;
pub mod template;
pub mod tuple;
pub mod wire;

pub use client::{DirectSpace, RemoteSpace};
pub use embedded::EmbeddedSpace;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{Node, Served};
pub use space::{MAX_STEPS, Space, SpaceError, Step, Subscription};
pub use syntax::{ParseError, parse_template, parse_tuple};
pub use template::{Field, Range, Template, TemplateError};
pub use tuple::{Kind, Tuple, Value};
