//! The consumer's Aeron side: its own client (external mode, connected to the media
//! driver in `ClientStreams::aeron_dir`), the control link, the descriptor feed, and the
//! hello and QoS publications, and the metadata subscription. Rebuilt whole when the media driver goes away.

use super::config::ConsumerConfig;
use super::descriptors::{DescriptorFeed, DescriptorStream};
use super::ConsumerError;
use crate::client::link::{stream_i32, ClientStreams, ControlLink};
use crate::transport::{Publication, Subscription};

/// One Aeron connection of a consumer.
pub(super) struct Connection {
    // Field order is drop order: everything made from the client before the link that
    // owns it.
    pub(super) descriptors: DescriptorFeed,
    pub(super) hello_pub: Publication,
    pub(super) qos_pub: Publication,
    pub(super) metadata_sub: Subscription,
    pub(super) link: ControlLink,
}

impl Connection {
    /// Connects (waiting up to `streams.connect_timeout` for a media driver) and sets up
    /// every stream of `config`.
    pub(super) fn open(
        config: &ConsumerConfig,
        streams: &ClientStreams,
    ) -> Result<Self, ConsumerError> {
        let link = ControlLink::connect(streams, &config.client_name)?;
        let hello_pub = Publication::add(
            link.client(),
            &streams.control_channel,
            stream_i32(streams.control_stream_id)?,
        )?;
        let qos_pub = Publication::add(
            link.client(),
            &streams.qos_channel,
            stream_i32(streams.qos_stream_id)?,
        )?;
        let metadata_sub = Subscription::add(
            link.client(),
            &streams.metadata_channel,
            stream_i32(streams.metadata_stream_id)?,
        )?;
        let descriptors = DescriptorFeed::new(link.client(), shared_descriptor_stream(streams))?;
        Ok(Self {
            descriptors,
            hello_pub,
            qos_pub,
            metadata_sub,
            link,
        })
    }

    /// Whether the Aeron client has closed (e.g. its media driver stopped answering).
    pub(super) fn is_closed(&self) -> bool {
        self.link.client().is_closed()
    }
}

/// The shared descriptor stream of `streams`.
pub(super) fn shared_descriptor_stream(streams: &ClientStreams) -> DescriptorStream {
    DescriptorStream {
        channel: streams.descriptor_channel.clone(),
        stream_id: streams.descriptor_stream_id,
    }
}
