//! The producer's Aeron side: its own client (external mode, connected to the media
//! driver in `ClientStreams::aeron_dir`), the control link, the shared descriptor
//! publication with the per-consumer ones, the QoS publication and subscription (the
//! consumers' `QosConsumer`, Wire Spec §10.4.1), and the metadata publication.

use super::descriptors::DescriptorFanout;
use super::error::ProducerError;
use crate::client::link::{stream_i32, ClientStreams, ControlLink};
use crate::transport::{Publication, Subscription, TransportError};

/// Name the media driver shows for a producer's Aeron client.
const CLIENT_NAME: &str = "tensorpool-producer";

/// One Aeron connection; rebuilt whole when the media driver goes away.
pub(super) struct Connection {
    // Field order is drop order: publications before the client that made them.
    pub(super) descriptors: DescriptorFanout,
    pub(super) qos: Publication,
    pub(super) qos_sub: Subscription,
    /// Added when the producer first has metadata to send: a producer without metadata
    /// keeps no log buffer for it.
    pub(super) metadata: Option<Publication>,
    pub(super) link: ControlLink,
}

impl Connection {
    /// The metadata publication, added on first use.
    pub(super) fn metadata_publication(
        &mut self,
        streams: &ClientStreams,
    ) -> Result<&Publication, TransportError> {
        if self.metadata.is_none() {
            self.metadata = Some(Publication::add(
                self.link.client(),
                &streams.metadata_channel,
                stream_i32(streams.metadata_stream_id)?,
            )?);
        }
        Ok(self.metadata.as_ref().expect("added above"))
    }

    /// Connects (waiting up to `streams.connect_timeout` for a media driver) and adds the
    /// control, descriptor and QoS streams (the metadata stream comes with the first
    /// metadata, [`Connection::metadata_publication`]).
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
        let qos_sub = Subscription::add(
            link.client(),
            &streams.qos_channel,
            stream_i32(streams.qos_stream_id)?,
        )?;
        Ok(Self {
            descriptors: DescriptorFanout::new(shared),
            qos,
            qos_sub,
            metadata: None,
            link,
        })
    }
}
