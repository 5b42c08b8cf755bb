//! The gateway's door: capabilities that let a client do exactly what one
//! job's isolated workers need, and nothing else.
//!
//! A trusted node serves every stream in full ([`Door::Open`]). A gateway
//! ([`crate::Node::start_gateway`]) serves only streams that present a
//! [`Capability`] ([`Door::Gated`]): the capability names a [`Grant`] in
//! the gateway's [`Grants`], and the grant's [`Scope`] lists the templates a
//! take or a read may ask for (the request's template must lie inside one
//! of them: never wider) and the templates every written tuple must match.
//! Scans, subscriptions and `status` are never granted. A refused request
//! gets a [`Response::Error`] naming what was refused, and the node logs it
//! with the client's peer id.
//!
//! A capability is a fresh 256-bit secret from the operating system's
//! entropy (through `rand`), known only to the gateway that issued it and
//! the worker handed it: unforgeable, since the gateway accepts only
//! secrets it holds. The secret is looked up again on every request, so
//! [`Grants::revoke`] cuts off the streams that presented it at their next
//! request. Its text form, as `HALLEY_TOKEN` carries it, is
//! `hcap1-<64 hex digits>-<label>`; the label (the job) only tells the
//! worker what it may ask for: the gateway trusts its own grant.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::space::Step;
use crate::template::{Field, Template};
use crate::tuple::{Kind, Tuple};
use crate::wire::{Request, Response};

/// What the text form of a capability starts with.
pub const PREFIX: &str = "hcap1-";

/// What a capability's text should be, for error messages.
const EXPECTED: &str = "hcap1-<64 hex digits>-<job>";

/// A capability's secret: 256 random bits.
type Secret = [u8; 32];

/// What a grant allows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    /// Templates a take may ask for (or narrower ones).
    pub take: Vec<Template>,
    /// Templates a read may ask for (or narrower ones).
    pub read: Vec<Template>,
    /// Every tuple written must match one of these.
    pub write: Vec<Template>,
}

/// One issued capability: who it is for, and what it allows.
#[derive(Debug)]
pub struct Grant {
    /// Whom it was issued for (a job).
    pub label: String,
    pub scope: Scope,
}

/// A capability in its text form, as a worker is handed it. Its `Debug`
/// hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability {
    secret: Secret,
    label: String,
}

/// The capabilities a gateway has issued and not revoked.
#[derive(Default)]
pub struct Grants {
    live: Mutex<HashMap<Secret, Arc<Grant>>>,
}

impl Capability {
    /// Parses the text form; the error says what was expected without
    /// repeating the text (it may hold a secret).
    pub fn parse(text: &str) -> Result<Capability, String> {
        let text = text.trim();
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("expected {EXPECTED}, found another prefix"))?;
        let (hex, label) = rest
            .split_once('-')
            .ok_or_else(|| format!("expected {EXPECTED}, found no '-' after the digits"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "expected {EXPECTED}, found {} characters where 64 hex digits go",
                hex.chars().count()
            ));
        }
        if label.is_empty() {
            return Err(format!("expected {EXPECTED}, found no job"));
        }
        let mut secret = [0; 32];
        for (byte, pair) in secret.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let digits = std::str::from_utf8(pair).expect("checked ASCII");
            *byte = u8::from_str_radix(digits, 16).expect("checked hex digits");
        }
        Ok(Capability {
            secret,
            label: label.to_owned(),
        })
    }

    /// Whom it was issued for (the job).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `text` is meant as a capability (rather than a key).
    pub fn looks_like(text: &str) -> bool {
        text.trim_start().starts_with(PREFIX)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for byte in self.secret {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "-{}", self.label)
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capability")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Grants {
    /// Issues a fresh capability for `label` that allows `scope`.
    pub fn issue(&self, label: &str, scope: Scope) -> Capability {
        let secret: Secret = rand::random();
        let grant = Arc::new(Grant {
            label: label.to_owned(),
            scope,
        });
        self.lock().insert(secret, grant);
        Capability {
            secret,
            label: label.to_owned(),
        }
    }

    /// Revokes every capability issued for `label`; returns how many.
    pub fn revoke(&self, label: &str) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, grant| grant.label != label);
        before - live.len()
    }

    /// Revokes every capability.
    pub fn revoke_all(&self) {
        self.lock().clear();
    }

    /// The grant of `secret`, unless revoked.
    fn grant(&self, secret: &Secret) -> Option<Arc<Grant>> {
        self.lock().get(secret).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Secret, Arc<Grant>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grants")
            .field("live", &self.lock().len())
            .finish()
    }
}

/// What one stream may do.
#[derive(Debug)]
pub(super) enum Door {
    /// A trusted node's stream: everything.
    Open,
    /// A gateway's stream: what the capability it presented allows.
    Gated {
        grants: Arc<Grants>,
        held: Option<Secret>,
    },
}

/// What to do with a request.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Serve it.
    Run,
    /// Answer this at once (an acknowledged capability, or a refusal).
    Answer(Response),
}

impl Door {
    /// The door of a new stream: gated when the node has grants.
    pub(super) fn new(gate: Option<&Arc<Grants>>) -> Door {
        match gate {
            Some(grants) => Door::Gated {
                grants: grants.clone(),
                held: None,
            },
            None => Door::Open,
        }
    }

    /// Whether `request` from `peer` may run; refusals are logged.
    pub(super) fn check(&mut self, peer: &impl fmt::Display, request: &Request) -> Verdict {
        // Every client's connect probes the stream with a `Status`: its
        // refusal before a capability is presented is no news.
        let probe =
            matches!(request, Request::Status) && matches!(self, Door::Gated { held: None, .. });
        let verdict = self.judge(request);
        if let Verdict::Answer(Response::Error { message, .. }) = &verdict {
            if probe {
                tracing::debug!(%peer, refused = %message, "refused a connect probe at the gateway");
            } else {
                tracing::warn!(%peer, refused = %message, "refused a request at the gateway");
            }
        }
        verdict
    }

    fn judge(&mut self, request: &Request) -> Verdict {
        let refuse = |why: String| Verdict::Answer(Response::refused(why));
        let (grants, held) = match self {
            Door::Open => {
                return match request {
                    Request::Present { .. } => {
                        refuse("this node takes no capabilities: it is not a job's gateway".into())
                    }
                    _ => Verdict::Run,
                };
            }
            Door::Gated { grants, held } => (grants, held),
        };
        match request {
            Request::Present { capability } => match Capability::parse(capability) {
                Err(e) => refuse(format!("malformed capability: {e}")),
                Ok(cap) => match grants.grant(&cap.secret) {
                    Some(_) => {
                        *held = Some(cap.secret);
                        Verdict::Answer(Response::Ack)
                    }
                    None => refuse(format!(
                        "the capability for {} is unknown or revoked at this gateway",
                        cap.label
                    )),
                },
            },
            // A cancel only ends one of the stream's own requests.
            Request::Cancel => Verdict::Run,
            _ => {
                let Some(secret) = held else {
                    return refuse(
                        "this gateway serves job capabilities only: present one first".into(),
                    );
                };
                let Some(grant) = grants.grant(secret) else {
                    return refuse("the capability was revoked".into());
                };
                match grant.scope.allows(request) {
                    Ok(()) => Verdict::Run,
                    Err(what) => refuse(format!(
                        "the capability for {} does not allow {what}",
                        grant.label
                    )),
                }
            }
        }
    }
}

impl Scope {
    /// `Ok` when the scope allows `request`; else what it does not allow.
    pub fn allows(&self, request: &Request) -> Result<(), String> {
        match request {
            Request::Out { tuples, .. } => self.allows_out(tuples),
            Request::Take { template, .. } => inside(template, &self.take, "taking"),
            Request::Read { template, .. } => inside(template, &self.read, "reading"),
            Request::Scan { template, .. } => Err(format!("scanning {template}")),
            Request::Subscribe { template } => Err(format!("subscribing to {template}")),
            Request::Status => Err("status".into()),
            // The members' addresses, which any client of the space may
            // know (a direct client routes with them).
            Request::Members => Ok(()),
            Request::Cancel | Request::Present { .. } => Ok(()),
            // Each step is judged as if it came alone.
            Request::Steps(steps) => steps.iter().try_for_each(|step| match step {
                Step::Out { tuples, .. } => self.allows_out(tuples),
                Step::Take { template, .. } => inside(template, &self.take, "taking"),
            }),
        }
    }

    /// `Ok` when the scope allows writing every one of `tuples`.
    fn allows_out(&self, tuples: &[Tuple]) -> Result<(), String> {
        match tuples
            .iter()
            .find(|t| !self.write.iter().any(|w| w.matches(t)))
        {
            None => Ok(()),
            Some(tuple) => Err(format!("writing {}", brief(tuple))),
        }
    }
}

/// `Ok` when `template` lies inside one of `allowed`.
fn inside(template: &Template, allowed: &[Template], verb: &str) -> Result<(), String> {
    if allowed.iter().any(|outer| within(template, outer)) {
        Ok(())
    } else {
        Err(format!("{verb} {template}"))
    }
}

/// Whether every tuple `inner` matches is matched by `outer` (judged field
/// by field, conservatively: `false` when unsure).
pub fn within(inner: &Template, outer: &Template) -> bool {
    inner.len() == outer.len()
        && inner
            .fields()
            .iter()
            .zip(outer.fields())
            .all(|(i, o)| field_within(i, o))
}

fn field_within(inner: &Field, outer: &Field) -> bool {
    match (inner, outer) {
        (_, Field::Any) => true,
        (Field::Any, _) => false,
        (Field::Actual(value), outer) => outer.matches(value),
        (Field::Typed(i), Field::Typed(o)) => i == o,
        (Field::Range(range), Field::Typed(kind)) => range.lo().kind() == *kind,
        (Field::Prefix(_), Field::Typed(Kind::Str)) => true,
        (Field::Prefix(i), Field::Prefix(o)) => i.starts_with(o.as_str()),
        _ => false,
    }
}

/// A tuple as a refusal names it: its first two fields and its arity (the
/// rest may be large).
fn brief(tuple: &Tuple) -> String {
    let head: Vec<String> = tuple
        .fields()
        .iter()
        .take(2)
        .map(|v| v.to_string())
        .collect();
    format!("a tuple ({}, …) of {} fields", head.join(", "), tuple.len())
}

#[cfg(test)]
mod tests;
