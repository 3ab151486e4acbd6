//! The producer's Aeron side: its own client (external mode, connected to the media
//! driver in `ClientStreams::aeron_dir`), the control link, the shared descriptor
//! publication with the per-consumer ones, and the QoS and metadata publications.

use super::descriptors::DescriptorFanout;
use super::error::ProducerError;
use crate::client::link::{stream_i32, ClientStreams, ControlLink};
use crate::transport::Publication;

/// Name the media driver shows for a producer's Aeron client.
const CLIENT_NAME: &str = "tensorpool-producer";

/// One Aeron connection; rebuilt whole when the media driver goes away.
pub(super) struct Connection {
    // Field order is drop order: publications before the client that made them.
    pub(super) descriptors: DescriptorFanout,
    pub(super) qos: Publication,
    pub(super) metadata: Publication,
    pub(super) link: ControlLink,
}

impl Connection {
    /// Connects (waiting up to `streams.connect_timeout` for a media driver) and adds the
    /// control, descriptor and QoS streams.
    pub(super) fn open(streams: &ClientStreams) -> Result<Self, ProducerError> {
        let link = ControlLink::connect(streams, CLIENT_NAME)?;
        let shared = Publication::add(
            link.client(),
            &streams.descriptor_channel,
            stream_i32(streams.descriptor_stream_id)?,
        )?;
        let qos = Publication::add(
            link.client(),
            &streams.qos_channel,
            stream_i32(streams.qos_stream_id)?,
        )?;
        let metadata = Publication::add(
            link.client(),
            &streams.metadata_channel,
            stream_i32(streams.metadata_stream_id)?,
        )?;
        Ok(Self {
            descriptors: DescriptorFanout::new(shared),
            qos,
            metadata,
            link,
        })
    }
}
