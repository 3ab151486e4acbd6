//! Clients of the SHM driver: the attach/keepalive/detach session (Driver Model §4,
//! §4.12.1, Appendix B), fail-closed validation of what the driver grants, mapping of the
//! granted regions, and the control-plane connection producers and consumers share.

pub mod consumer;
pub mod grant;
pub mod link;
pub mod mapping;
pub mod metadata;
pub mod producer;
pub mod progress;
pub mod qos;
pub mod random;
pub mod rate;
pub mod refusal;
pub mod session;
pub mod tensor;

pub use grant::{LeaseGrant, PoolGrant, ProtocolError};
pub use link::{ClientStreams, ControlLink, LinkError};
pub use mapping::{MapError, MappedEpoch, MappedPool};
pub use refusal::attach_refusal_fix;
pub use session::{DriverSession, Request, SessionConfig, SessionEvent};
