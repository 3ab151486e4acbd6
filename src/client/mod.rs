//! Clients of the SHM driver: the attach/keepalive/detach session (Driver Model §4,
//! §4.12.1, Appendix B), fail-closed validation of what the driver grants, mapping of the
//! granted regions, and the control-plane connection producers and consumers share.

pub mod grant;
pub mod link;
pub mod mapping;
pub mod random;
pub mod session;

pub use grant::{LeaseGrant, PoolGrant, ProtocolError};
pub use link::{ClientStreams, ControlLink, LinkError};
pub use mapping::{MapError, MappedEpoch, MappedPool};
pub use session::{DriverSession, Request, SessionConfig, SessionEvent};
pub mod producer;
pub mod tensor;
pub mod consumer;
