//! The optional per-frame fields of a `FrameDescriptor` (Wire Spec §10.2.1): the publish
//! timestamp and the trace id. Both are plain integers carried into the fixed-size
//! descriptor the producer already encodes on the stack, so a stamped frame costs what an
//! unstamped one does (no allocation, no extra offer).

/// What a producer may add to one frame's descriptor; 0 in either field means absent.
///
/// `SlotHeader.timestamp_ns` (capture time) is the `timestamp_ns` argument of
/// [`Producer::publish`](super::Producer::publish) and
/// [`FrameClaim::commit`](super::FrameClaim::commit); this is the descriptor's own
/// timestamp, the publish time, which the spec asks producers to leave absent unless
/// publish-time alignment is wanted (§10.2.1 "Timestamp semantics").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DescriptorStamp {
    /// `FrameDescriptor.traceId`: 0 = no trace (TraceLink is off for the frame).
    pub trace_id: u64,
    /// `FrameDescriptor.timestampNs`, the publish time; 0 = absent (encoded as the null
    /// value).
    pub timestamp_ns: u64,
}

impl DescriptorStamp {
    /// No trace id, no publish timestamp: what [`Producer::publish`](super::Producer::publish) sends.
    pub const NONE: Self = Self {
        trace_id: 0,
        timestamp_ns: 0,
    };

    /// A stamp carrying only a trace id.
    pub const fn traced(trace_id: u64) -> Self {
        Self {
            trace_id,
            timestamp_ns: 0,
        }
    }

    /// The trace id as the codec takes it (`None` = absent).
    #[inline]
    pub(super) fn wire_trace_id(&self) -> Option<u64> {
        (self.trace_id != 0).then_some(self.trace_id)
    }

    /// The publish timestamp as the codec takes it (`None` = absent).
    #[inline]
    pub(super) fn wire_timestamp_ns(&self) -> Option<u64> {
        (self.timestamp_ns != 0).then_some(self.timestamp_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_absent_on_the_wire() {
        assert_eq!(DescriptorStamp::NONE.wire_trace_id(), None);
        assert_eq!(DescriptorStamp::NONE.wire_timestamp_ns(), None);
        let stamp = DescriptorStamp {
            trace_id: 7,
            timestamp_ns: 9,
        };
        assert_eq!(
            (stamp.wire_trace_id(), stamp.wire_timestamp_ns()),
            (Some(7), Some(9))
        );
        assert_eq!(DescriptorStamp::traced(5).wire_timestamp_ns(), None);
    }
}
