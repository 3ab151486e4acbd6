//! Aeron transport: the only module that touches rusteron (the Rust binding of Aeron's C
//! client and media driver). Everything else in the crate speaks to Aeron through these
//! types and [`TransportError`].
//!
//! # Threading model
//!
//! Nothing here starts a thread. In the default *embedded* mode one thread owns an
//! [`AeronClient`] that owns an [`EmbeddedMediaDriver`]: the C media driver runs in
//! threading mode INVOKER (started with `manual_main_loop`), the client runs in
//! agent-invoker mode, and [`AeronClient::do_work`] pumps both, driver first. The SHM
//! driver agent runs in the same duty cycle ([`DutyCycle`] composes them). In *external*
//! mode (`driver.media_driver = "external"`) [`AeronClient::connect`] attaches to a media
//! driver another process (or thread) runs, and `do_work` pumps only the client.
//!
//! The client and everything made from it ([`Publication`], [`Subscription`],
//! [`Counter`]) are `!Send`: rusteron shares its C handles through `Rc`, so they stay on
//! the thread that created them; another thread makes its own client. The client must be
//! pumped regularly (well within the driver's client liveness timeout, 10 s by default),
//! and registrations complete only while it is pumped. An embedded driver is `Send` and can
//! be started on, and pumped by, a thread of its own (see `tests/transport.rs`).
//!
//! Registrations come in two forms: `add` (blocks, pumping the client, up to
//! [`ClientOptions::resource_timeout`]) for start-up, and `start_add` + `poll` for use
//! inside a running duty cycle.
//!
//! Rusteron children keep their client alive: dropping an [`AeronClient`] while a
//! publication made from it lives defers Aeron's client close until the last one drops,
//! but an owned embedded driver still closes with the client value. Drop publications,
//! subscriptions and counters before their client.

mod client;
mod counters;
mod duty_cycle;
mod error;
mod idle;
#[cfg(feature = "embedded-media-driver")]
mod media_driver;
mod outbound;
mod publication;
mod subscription;

pub use client::{default_aeron_dir, AeronClient, ClientOptions, CNC_CHECK_INTERVAL};
pub use counters::{read_counters, Counter, CounterSnapshot, PendingCounter};
pub use duty_cycle::DutyCycle;
pub use error::TransportError;
pub use idle::BackoffIdle;
#[cfg(feature = "embedded-media-driver")]
pub use media_driver::{EmbeddedMediaDriver, MediaDriverOptions, OWNER_FILE};
pub use outbound::{Offer, OutboundQueue, OutboundStats, SendOutcome};
pub use publication::{OfferOutcome, PendingPublication, Publication, MAX_OFFER_PARTS};
pub use subscription::{PendingSubscription, Subscription};
